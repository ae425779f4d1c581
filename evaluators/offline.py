"""The offline judge: sentence embeddings against the rubric's own language, no network.

Zero-shot, every check is matched against the turns of its speaker: each sentence of each turn
(and each turn as a whole) is compared with the check's exemplars, and with the anchor and
examples of its level when the level has only that check. Counter-examples push a match down.
The best-matching sentence is the evidence (turn, start time, exact quote) and the check is
observed when its score reaches the threshold. The level then follows from the checks through
`Criterion.level_from_checks`, and an `applies_when` check that is not observed makes the
criterion N/A.

With human labels for a criterion, the judge learns a small ordinal model (two logistic
regressions, "above level 1" and "above level 2") over the check and level similarities, the
judged turn's embedding, its context and a few surface features. That model then sets the
level; the checks still give the evidence. Fitted models are stored per rubric version and
criterion under `models_dir` and loaded when present.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from config.rubric import LEVELS, Check, Criterion, Rubric
from evaluators.base import (
    CheckResult,
    CriterionVerdict,
    EvaluatorError,
    Transcript,
    Unscored,
    Verdict,
)
from evaluators.embeddings import DIM, EncodedText, SentenceEncoder, Vectors

logger = logging.getLogger(__name__)

JUDGE_NAME = "offline-minilm@1"
DEFAULT_THRESHOLD = 0.5
"""Score a sentence needs against a check's exemplars for the check to be observed."""
FEATURES_VERSION = 1
MIN_LABELS = 10
"""Fewest labelled examples (with at least two levels among them) the judge learns from."""
MODEL_SUFFIX = ".npz"
MODELS_SUBDIR = "offline-judge"

_CONFIDENCE_SPAN = 0.15
_WORD = re.compile(r"[a-z']+")
_QUESTION = re.compile(r"\?[\"')\]]*\s*$")
_SECOND_PERSON = frozenset(
    {"you", "your", "yours", "yourself", "you're", "you've", "you'd", "you'll", "ya", "u"}
)
_FIRST_PERSON = frozenset({"i", "me", "my", "mine", "myself", "i'm", "i've", "i'd", "i'll"})

FloatArray = NDArray[np.float64]


class LabelError(EvaluatorError):
    """Labels that cannot be learnt from; the message says what is wrong and how to fix it."""


@dataclass(frozen=True, slots=True)
class LabelledExample:
    """A transcript and the level a person gave it on one criterion."""

    transcript: Transcript
    level: int


def fingerprint(transcript: Transcript) -> str:
    """A stable hash of what the judge sees of a transcript (its turns and judged turn)."""
    payload = {
        "turns": [[t.speaker, t.text] for t in transcript.turns],
        "target": transcript.target_turn,
    }
    raw = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()[:20]


# -- the rubric, embedded ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _PreparedCheck:
    check: Check
    level: int | None
    """None for an `applies_when` check."""
    positive: Vectors
    negative: Vectors | None


@dataclass(frozen=True, slots=True)
class _PreparedCriterion:
    criterion: Criterion
    checks: list[_PreparedCheck]
    """Checks of levels 1, 2 and 3, in rubric order."""
    applies_when: _PreparedCheck | None
    level_vectors: dict[int, Vectors]
    """Anchor and examples of each level."""
    speaker: str
    """The speaker whose turns the criterion judges (most of its checks' speaker)."""


def _prepare_check(
    encoder: SentenceEncoder, check: Check, level: int | None, extra: Sequence[str]
) -> _PreparedCheck:
    texts = [*check.exemplars, *extra] or [check.question]
    negative = (
        encoder.encode(check.counter_examples, cache=True) if check.counter_examples else None
    )
    return _PreparedCheck(
        check=check, level=level, positive=encoder.encode(texts, cache=True), negative=negative
    )


def _prepare_criterion(encoder: SentenceEncoder, criterion: Criterion) -> _PreparedCriterion:
    checks: list[_PreparedCheck] = []
    level_vectors: dict[int, Vectors] = {}
    for lvl in LEVELS:
        spec = criterion.levels[lvl]
        # A level's anchor and examples describe its only check; with several checks they
        # would let one check be observed on another's words, so they stay out.
        extra = [spec.anchor, *spec.examples] if len(spec.checks) == 1 else []
        checks.extend(_prepare_check(encoder, check, lvl, extra) for check in spec.checks)
        level_vectors[lvl] = encoder.encode([spec.anchor, *spec.examples], cache=True)
    applies = (
        _prepare_check(encoder, criterion.applies_when, None, [])
        if criterion.applies_when is not None
        else None
    )
    speakers = [c.check.speaker for c in checks if c.check.speaker != "any"]
    speaker = max(set(speakers), key=speakers.count) if speakers else "agent"
    return _PreparedCriterion(criterion, checks, applies, level_vectors, speaker)


# -- transcripts, embedded ----------------------------------------------------------------------


@dataclass(slots=True)
class _Encoded:
    transcript: Transcript
    turns: list[EncodedText]
    whole: Vectors | None = None
    """Whole-text vector of the judged turn (target_turn), when one is set."""
    _units: tuple[Vectors, list[tuple[int, tuple[int, int] | None]]] | None = None

    def units(self) -> tuple[Vectors, list[tuple[int, tuple[int, int] | None]]]:
        """Every sentence, plus every multi-sentence turn as a whole, with where it sits."""
        if self._units is None:
            rows: list[Vectors] = []
            where: list[tuple[int, tuple[int, int] | None]] = []
            for pos, enc in enumerate(self.turns):
                rows.append(enc.sentence_vectors)
                where.extend((pos, span) for span in enc.sentences)
                if len(enc.sentences) > 1:
                    rows.append(enc.vector[None, :])
                    where.append((pos, None))
            matrix = np.vstack(rows) if rows else np.zeros((0, DIM), dtype=np.float32)
            self._units = (matrix, where)
        return self._units


def _candidates(transcript: Transcript, speaker: str) -> list[int]:
    """Positions of the turns a check of `speaker` is matched against."""
    turns = transcript.turns
    target = transcript.target_turn
    if target is None:
        return [i for i, t in enumerate(turns) if speaker in ("any", t.speaker)]
    if speaker in ("any", turns[target].speaker):
        return [target]
    return [i for i in range(target) if turns[i].speaker == speaker]


def _match(enc: _Encoded, prepared: _PreparedCheck, threshold: float) -> tuple[CheckResult, float]:
    """The best-matching sentence (or turn) for a check, and the check's score."""
    matrix, where = enc.units()
    allowed = set(_candidates(enc.transcript, prepared.check.speaker))
    rows = [k for k, (pos, _) in enumerate(where) if pos in allowed]
    if not rows:
        return CheckResult(check_id=prepared.check.id, observed=False), -1.0
    units = matrix[rows]
    scores = (units @ prepared.positive.T).max(axis=1)
    if prepared.negative is not None:
        against = (units @ prepared.negative.T).max(axis=1)
        scores = scores - np.maximum(0.0, against - scores)
    best = int(scores.argmax())
    score = float(scores[best])
    observed = score >= threshold
    if not observed:
        return CheckResult(prepared.check.id, False, similarity=round(score, 4)), score
    pos, span = where[rows[best]]
    turn = enc.transcript.turns[pos]
    quote = turn.text if span is None else turn.text[span[0] : span[1]]
    result = CheckResult(
        check_id=prepared.check.id,
        observed=True,
        turn=turn.idx,
        start_s=turn.start_s,
        quote=quote,
        similarity=round(score, 4),
    )
    return result, score


# -- features for learnt levels -----------------------------------------------------------------


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _judged(enc: _Encoded, speaker: str) -> list[int]:
    if enc.transcript.target_turn is not None:
        return [enc.transcript.target_turn]
    return _candidates(enc.transcript, speaker)


def _features(enc: _Encoded, prep: _PreparedCriterion) -> tuple[FloatArray, Vectors, Vectors]:
    """Similarity and surface features, the judged text's vector and its context's vector."""
    turns = enc.transcript.turns
    judged = _judged(enc, prep.speaker)
    feats: list[float] = []
    if not judged:
        sentences = np.zeros((1, DIM), dtype=np.float32)
        vector = np.zeros(DIM, dtype=np.float32)
    else:
        sentences = np.vstack([enc.turns[i].sentence_vectors for i in judged])
        if enc.whole is not None and len(judged) == 1:
            vector = enc.whole
        else:
            vector = _unit(np.mean([enc.turns[i].vector for i in judged], axis=0))
    for prepared in prep.checks:
        scores = (sentences @ prepared.positive.T).max(axis=1)
        if prepared.negative is not None:
            against = (sentences @ prepared.negative.T).max(axis=1)
            scores = scores - np.maximum(0.0, against - scores)
        feats += [float(scores.max()), float((vector @ prepared.positive.T).max())]
    for lvl in LEVELS:
        sims = sentences @ prep.level_vectors[lvl].T
        feats += [float(sims.max()), float((vector @ prep.level_vectors[lvl].T).max())]

    # context: the other speakers' turns before the judged one (or around the judged turns)
    first = judged[0] if judged else len(turns)
    own = {turns[i].speaker for i in judged}
    before = [i for i in range(first) if turns[i].speaker not in own]
    if enc.transcript.target_turn is None:
        before = [i for i in range(len(turns)) if turns[i].speaker not in own]
    if before:
        last = before[-1]
        previous = enc.turns[last]
        context = _unit(np.mean([enc.turns[i].vector for i in before], axis=0))
        cross = sentences @ previous.sentence_vectors.T
        feats += [
            float(vector @ previous.vector),
            float(cross.max()),
            float(cross.max(axis=1).mean()),
            float(vector @ context),
        ]
        previous_words = set(_words(turns[last].text))
        context_vector = previous.vector
    else:
        feats += [0.0, 0.0, 0.0, 0.0]
        previous_words = set()
        context_vector = np.zeros(DIM, dtype=np.float32)

    texts = [turns[i].text for i in judged]
    spans = [enc.turns[i].sentences for i in judged]
    pieces = [
        text[a:b] for text, text_spans in zip(texts, spans, strict=True) for a, b in text_spans
    ]
    questions = [bool(_QUESTION.search(p)) for p in pieces] or [False]
    words = [w for text in texts for w in _words(text)]
    content = [w for w in words if len(w) > 3]
    n_words = max(len(words), 1)
    feats += [
        float(len(pieces)),
        float(np.mean(questions)),
        float(any(questions)),
        math.log1p(sum(len(t) for t in texts)),
        sum(w in _SECOND_PERSON for w in words) / n_words,
        sum(w in _FIRST_PERSON for w in words) / n_words,
        sum(w in previous_words for w in content) / max(len(content), 1),
    ]
    return np.asarray(feats, dtype=np.float64), vector, context_vector


def _unit(vector: NDArray[Any]) -> Vectors:
    norm = float(np.linalg.norm(vector))
    return (vector / norm if norm > 0 else vector).astype(np.float32)


# -- the learnt model ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LevelModel:
    """An ordinal model from features to a level, learnt from human labels on one criterion.

    Inference is plain numpy on the stored arrays, so a saved model loads without pickle and
    without the library that fitted it.
    """

    rubric_version: str
    criterion_id: str
    n_labels: int
    label_counts: dict[int, int]
    arrays: dict[str, FloatArray]
    fingerprints: frozenset[str] = frozenset()
    """Fingerprints of the transcripts it was trained on; those are never scored with it."""
    created_at: str = ""
    features_version: int = FEATURES_VERSION
    encoder: str = ""

    @staticmethod
    def design(feats: FloatArray, vectors: Vectors, context: Vectors) -> FloatArray:
        """One row of the model's input: features, judged vector, context vector, their product."""
        return np.concatenate([feats, vectors, context, vectors * context]).astype(np.float64)

    def above(self, x: FloatArray) -> FloatArray:
        """P(level > 1) and P(level > 2) for each row of a design matrix, shape (n, 2)."""
        z = x @ self.arrays["weights"].T + self.arrays["bias"]
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))
        p[:, 1] = np.minimum(p[:, 1], p[:, 0])
        return np.asarray(p, dtype=np.float64)

    def predict(self, x: FloatArray) -> tuple[list[int], list[float]]:
        """Levels and the probability of each predicted level."""
        p = self.above(x)
        probs = np.stack([1 - p[:, 0], p[:, 0] - p[:, 1], p[:, 1]], axis=1)
        levels = 1 + (p[:, 0] >= 0.5).astype(int) + (p[:, 1] >= 0.5).astype(int)
        chosen = probs[np.arange(len(levels)), levels - 1]
        return [int(v) for v in levels], [float(v) for v in chosen]

    def save(self, path: Path) -> None:
        meta = {
            "rubric_version": self.rubric_version,
            "criterion_id": self.criterion_id,
            "n_labels": self.n_labels,
            "label_counts": {str(k): v for k, v in self.label_counts.items()},
            "fingerprints": sorted(self.fingerprints),
            "created_at": self.created_at,
            "features_version": self.features_version,
            "encoder": self.encoder,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as fh:
            payload: dict[str, Any] = {"meta": np.array(json.dumps(meta)), **self.arrays}
            np.savez_compressed(fh, **payload)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> LevelModel:
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                arrays = {
                    k: np.asarray(data[k], dtype=np.float64) for k in data.files if k != "meta"
                }
        except (OSError, ValueError, KeyError) as exc:
            raise EvaluatorError(
                f"{path}: not a level model saved by this judge ({type(exc).__name__}); delete "
                "it and learn again"
            ) from None
        return cls(
            rubric_version=meta["rubric_version"],
            criterion_id=meta["criterion_id"],
            n_labels=int(meta["n_labels"]),
            label_counts={int(k): int(v) for k, v in meta["label_counts"].items()},
            arrays=arrays,
            fingerprints=frozenset(meta.get("fingerprints", [])),
            created_at=meta.get("created_at", ""),
            features_version=int(meta.get("features_version", 0)),
            encoder=meta.get("encoder", ""),
        )


def _pca(matrix: FloatArray, n: int) -> tuple[FloatArray, FloatArray]:
    mean = matrix.mean(axis=0)
    n = max(1, min(n, matrix.shape[0] - 1, matrix.shape[1]))
    _, _, vt = np.linalg.svd(matrix - mean, full_matrices=False)
    return mean, vt[:n]


def _fit_level_model(
    rows: Sequence[tuple[FloatArray, Vectors, Vectors]],
    levels: Sequence[int],
    *,
    rubric_version: str,
    criterion_id: str,
    fingerprints: Iterable[str],
    encoder: str,
    c: float = 0.1,
) -> LevelModel:
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(levels)
    feats = np.stack([r[0] for r in rows])
    vectors = np.stack([r[1] for r in rows]).astype(np.float64)
    context = np.stack([r[2] for r in rows]).astype(np.float64)
    # Embeddings enter through PCA (fitted on the training rows) to keep the model small
    # against a few hundred labels; everything is linear, so the fitted pipeline folds into
    # one weight vector over the raw inputs at the end.
    blocks = [(vectors, 32), (context, 16), (vectors * context, 16)]
    projections = [_pca(block, n) for block, n in blocks]
    x = np.hstack(
        [
            feats,
            *(
                (block - mean) @ comps.T
                for (block, _), (mean, comps) in zip(blocks, projections, strict=True)
            ),
        ]
    )
    x_mean = x.mean(axis=0)
    x_scale = x.std(axis=0)
    x_scale = np.where(x_scale > 1e-9, x_scale, 1.0)
    x = (x - x_mean) / x_scale
    n_raw = feats.shape[1] + DIM * 3
    weights = np.zeros((2, n_raw))
    bias = np.zeros(2)
    for k, cut in enumerate((1, 2)):
        target = (y > cut).astype(int)
        if target.min() == target.max():
            # every label on one side of this cut: a constant, confident answer
            bias[k] = 30.0 if target[0] == 1 else -30.0
            continue
        fitted = LogisticRegression(C=c, class_weight="balanced", max_iter=2000).fit(x, target)
        coef = fitted.coef_[0] / x_scale
        bias[k] = fitted.intercept_[0] - float(coef @ x_mean)
        n_feats = feats.shape[1]
        weights[k, :n_feats] = coef[:n_feats]
        at = n_feats
        for b, (mean, comps) in enumerate(projections):
            part = coef[at : at + comps.shape[0]] @ comps
            weights[k, n_feats + b * DIM : n_feats + (b + 1) * DIM] = part
            bias[k] -= float(part @ mean)
            at += comps.shape[0]
    arrays = {"weights": weights, "bias": bias}
    counts: dict[int, int] = {lvl: int((y == lvl).sum()) for lvl in LEVELS}
    return LevelModel(
        rubric_version=rubric_version,
        criterion_id=criterion_id,
        n_labels=len(y),
        label_counts=counts,
        arrays=arrays,
        fingerprints=frozenset(fingerprints),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        encoder=encoder,
    )


# -- the judge ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Outcome:
    verdict: Verdict | None = None
    error: Unscored | None = None
    notes: list[str] = field(default_factory=list)


class OfflineJudge:
    """Scores transcripts against a rubric with sentence embeddings, on this machine.

    Args:
        encoder: the loaded sentence encoder (load once per process and share); default:
            all-MiniLM-L6-v2 from its package, loaded here.
        models_dir: the models folder; learnt level models are kept under `offline-judge/`
            in it, one file per rubric version and criterion. None keeps them in memory only.
        threshold: the score a check needs to count as observed.
        thresholds: per-check overrides of `threshold`, by check id.
        cache_turns: keep the vectors of turn sentences in the encoder's LRU cache. Calls
            repeat many sentences ("Okay.", "Is there anything else I can help with?"), so
            each is embedded once per process rather than once per call; runs that score the
            same transcripts again (cross-validation) reuse every vector. The vectors are the
            same either way; False embeds every batch's sentences afresh.
    """

    def __init__(
        self,
        encoder: SentenceEncoder | None = None,
        *,
        models_dir: Path | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        thresholds: Mapping[str, float] | None = None,
        cache_turns: bool = True,
    ) -> None:
        self._encoder = encoder if encoder is not None else SentenceEncoder()
        self._models_dir = models_dir
        self._threshold = threshold
        self._thresholds = dict(thresholds or {})
        self._cache_turns = cache_turns
        self._prepared: dict[str, dict[str, _PreparedCriterion]] = {}
        self._models: dict[tuple[str, str], LevelModel | None] = {}

    @property
    def name(self) -> str:
        return JUDGE_NAME

    # -- learnt models --

    def model_path(self, rubric: Rubric, criterion_id: str) -> Path | None:
        if self._models_dir is None:
            return None
        return self._models_dir / MODELS_SUBDIR / rubric.version / f"{criterion_id}{MODEL_SUFFIX}"

    def model_for(self, rubric: Rubric, criterion_id: str) -> LevelModel | None:
        """The learnt model in use for a criterion, loaded from `models_dir` on first use."""
        key = (rubric.version, criterion_id)
        if key not in self._models:
            self._models[key] = self._load_model(rubric, criterion_id)
        return self._models[key]

    def _load_model(self, rubric: Rubric, criterion_id: str) -> LevelModel | None:
        path = self.model_path(rubric, criterion_id)
        if path is None or not path.is_file():
            return None
        model = LevelModel.load(path)
        if model.features_version != FEATURES_VERSION or model.encoder != self._encoder.name:
            logger.warning(
                "level model out of date; using the check rule",
                extra={"path": str(path), "criterion": criterion_id},
            )
            return None
        logger.info(
            "level model loaded",
            extra={"path": str(path), "criterion": criterion_id, "labels": model.n_labels},
        )
        return model

    def use_model(self, model: LevelModel | None, *, rubric: Rubric, criterion_id: str) -> None:
        """Score `criterion_id` with `model` from now on (None: with the check rule)."""
        if model is not None and (model.rubric_version, model.criterion_id) != (
            rubric.version,
            criterion_id,
        ):
            raise EvaluatorError(
                f"the model was learnt for `{model.criterion_id}` of rubric version "
                f"{model.rubric_version}, not `{criterion_id}` of {rubric.version}"
            )
        self._models[(rubric.version, criterion_id)] = model

    def labels_learnt(self, rubric: Rubric) -> dict[str, int]:
        """How many human labels each criterion's level comes from (0: the check rule)."""
        counts: dict[str, int] = {}
        for criterion in rubric.criteria:
            model = self.model_for(rubric, criterion.id)
            counts[criterion.id] = model.n_labels if model is not None else 0
        return counts

    async def learn(
        self,
        rubric: Rubric,
        criterion_id: str,
        examples: Sequence[LabelledExample],
        *,
        save: bool = True,
        exclude: Iterable[Transcript] = (),
    ) -> LevelModel:
        """Learn a criterion's levels from labelled transcripts and use the model from now on.

        Transcripts in `exclude` (the ones about to be scored) are left out of training.
        With `save` and a `models_dir`, the model is written there for later runs.

        Raises:
            LabelError: too few usable labels, or a level outside 1-3.
            KeyError: the rubric has no such criterion.
        """
        criterion = rubric.criterion(criterion_id)
        skip = {fingerprint(t) for t in exclude}
        usable: list[LabelledExample] = []
        for n, example in enumerate(examples):
            if example.level not in LEVELS:
                raise LabelError(
                    f"label {n + 1} for `{criterion_id}` is {example.level!r}; levels are 1, 2, 3"
                )
            if fingerprint(example.transcript) not in skip:
                usable.append(example)
        if len(usable) < MIN_LABELS or len({e.level for e in usable}) < 2:
            raise LabelError(
                f"`{criterion_id}` needs at least {MIN_LABELS} labelled examples covering two "
                f"levels or more to learn from; got {len(usable)}"
            )
        model = await asyncio.to_thread(self._learn_blocking, rubric, criterion, usable)
        self._models[(rubric.version, criterion_id)] = model
        path = self.model_path(rubric, criterion_id)
        if save and path is not None:
            await asyncio.to_thread(model.save, path)
            logger.info(
                "level model saved",
                extra={"path": str(path), "criterion": criterion_id, "labels": model.n_labels},
            )
        return model

    def _learn_blocking(
        self, rubric: Rubric, criterion: Criterion, examples: Sequence[LabelledExample]
    ) -> LevelModel:
        transcripts = [e.transcript for e in examples]
        for t in transcripts:
            problem = _problem(t)
            if problem:
                raise LabelError(f"a labelled transcript cannot be used: {problem}")
        encoded = self._encode(transcripts, whole=True)
        prep = self._prepare(rubric)[criterion.id]
        rows = [_features(enc, prep) for enc in encoded]
        return _fit_level_model(
            rows,
            [e.level for e in examples],
            rubric_version=rubric.version,
            criterion_id=criterion.id,
            fingerprints=(fingerprint(t) for t in transcripts),
            encoder=self._encoder.name,
        )

    # -- scoring --

    async def evaluate(self, transcript: Transcript, rubric: Rubric) -> Verdict:
        (result,) = await self.evaluate_many([transcript], rubric)
        if isinstance(result, Unscored):
            raise result
        return result

    async def evaluate_many(
        self, transcripts: Sequence[Transcript], rubric: Rubric
    ) -> list[Verdict | Unscored]:
        """Score a batch with one embedding pass over all of its turns (in a worker thread)."""
        if not transcripts:
            return []
        return await asyncio.to_thread(self._evaluate_blocking, transcripts, rubric)

    def _evaluate_blocking(
        self, transcripts: Sequence[Transcript], rubric: Rubric
    ) -> list[Verdict | Unscored]:
        prepared = self._prepare(rubric)
        results: list[Verdict | Unscored | None] = [None] * len(transcripts)
        good: list[int] = []
        for i, transcript in enumerate(transcripts):
            problem = _problem(transcript)
            if problem:
                logger.warning(
                    "transcript not scored",
                    extra={"interaction_id": transcript.interaction_id, "reason": problem},
                )
                results[i] = Unscored(problem)
            else:
                good.append(i)
        models = {c.id: self.model_for(rubric, c.id) for c in rubric.criteria}
        whole = any(m is not None for m in models.values())
        encoded = self._encode([transcripts[i] for i in good], whole=whole)
        for i, enc in zip(good, encoded, strict=True):
            try:
                results[i] = self._verdict(enc, rubric, prepared, models)
            except Exception as exc:  # one bad item must not sink the batch
                logger.exception(
                    "transcript not scored",
                    extra={"interaction_id": transcripts[i].interaction_id},
                )
                results[i] = Unscored(f"offline judge failed: {type(exc).__name__}")
        return [r for r in results if r is not None]

    def _prepare(self, rubric: Rubric) -> dict[str, _PreparedCriterion]:
        prepared = self._prepared.get(rubric.version)
        if prepared is None:
            prepared = {c.id: _prepare_criterion(self._encoder, c) for c in rubric.criteria}
            self._prepared[rubric.version] = prepared
        return prepared

    def _encode(self, transcripts: Sequence[Transcript], *, whole: bool) -> list[_Encoded]:
        texts = [turn.text for t in transcripts for turn in t.turns]
        turns = self._encoder.encode_turns(texts, cache=self._cache_turns)
        encoded: list[_Encoded] = []
        at = 0
        for t in transcripts:
            encoded.append(_Encoded(t, turns[at : at + len(t.turns)]))
            at += len(t.turns)
        if whole:
            # the judged turn as one text, for learnt models (multi-sentence turns only)
            todo = [
                e
                for e in encoded
                if e.transcript.target_turn is not None
                and len(e.turns[e.transcript.target_turn].sentences) > 1
            ]
            vectors = self._encoder.encode(
                [e.transcript.turns[e.transcript.target_turn or 0].text for e in todo],
                cache=self._cache_turns,
            )
            for e, vector in zip(todo, vectors, strict=True):
                e.whole = vector
            for e in encoded:
                if e.whole is None and e.transcript.target_turn is not None:
                    e.whole = e.turns[e.transcript.target_turn].vector
        return encoded

    def _threshold_for(self, check: Check) -> float:
        return self._thresholds.get(check.id, self._threshold)

    def _verdict(
        self,
        enc: _Encoded,
        rubric: Rubric,
        prepared: Mapping[str, _PreparedCriterion],
        models: Mapping[str, LevelModel | None],
    ) -> Verdict:
        verdicts: list[CriterionVerdict] = []
        for criterion in rubric.criteria_for(enc.transcript.role):
            prep = prepared[criterion.id]
            verdicts.append(self._criterion_verdict(enc, prep, models.get(criterion.id)))
        return Verdict(judge=self.name, criteria=verdicts)

    def _criterion_verdict(
        self, enc: _Encoded, prep: _PreparedCriterion, model: LevelModel | None
    ) -> CriterionVerdict:
        criterion = prep.criterion
        results: list[CheckResult] = []
        margins: dict[str, float] = {}
        if prep.applies_when is not None:
            check = prep.applies_when.check
            result, score = _match(enc, prep.applies_when, self._threshold_for(check))
            results.append(result)
            if not result.observed:
                return CriterionVerdict(
                    criterion_id=criterion.id,
                    level=None,
                    checks=results,
                    confidence=_margin_confidence(score - self._threshold_for(check)),
                    rationale=f"N/A: `{check.id}` not observed",
                )
        observed: dict[str, bool] = {}
        for prepared in prep.checks:
            threshold = self._threshold_for(prepared.check)
            result, score = _match(enc, prepared, threshold)
            results.append(result)
            observed[prepared.check.id] = result.observed
            margins[prepared.check.id] = score - threshold
        rule_level = criterion.level_from_checks(observed)
        met = ", ".join(sorted(k for k, v in observed.items() if v)) or "none"
        if model is not None and fingerprint(enc.transcript) in model.fingerprints:
            logger.warning(
                "transcript was among the training labels; level from the check rule",
                extra={"criterion": criterion.id, "interaction_id": enc.transcript.interaction_id},
            )
            model = None
        if model is None:
            return CriterionVerdict(
                criterion_id=criterion.id,
                level=rule_level,
                checks=results,
                confidence=_rule_confidence(criterion, observed, margins),
                rationale=f"level {rule_level} by the check rule; checks observed: {met}",
            )
        feats, vector, context = _features(enc, prep)
        levels, probs = model.predict(model.design(feats, vector, context)[None, :])
        return CriterionVerdict(
            criterion_id=criterion.id,
            level=levels[0],
            checks=results,
            confidence=round(probs[0], 4),
            rationale=(
                f"level {levels[0]} from a model learnt from {model.n_labels} human labels "
                f"(the check rule gives {rule_level}); checks observed: {met}"
            ),
        )


def _problem(transcript: Transcript) -> str | None:
    if not transcript.turns:
        return "the transcript has no turns"
    target = transcript.target_turn
    if target is not None and not 0 <= target < len(transcript.turns):
        return f"target_turn {target} is outside the {len(transcript.turns)} turns"
    if not any(turn.text.strip() for turn in transcript.turns):
        return "every turn of the transcript is empty"
    return None


def _margin_confidence(margin: float) -> float:
    return round(0.5 + 0.5 * min(1.0, abs(margin) / _CONFIDENCE_SPAN), 4)


def _rule_confidence(
    criterion: Criterion, observed: Mapping[str, bool], margins: Mapping[str, float]
) -> float:
    """How far from its threshold the weakest check stands whose flip would change the level."""
    level = criterion.level_from_checks(observed)
    decisive: list[float] = []
    for check_id, margin in margins.items():
        flipped = dict(observed)
        flipped[check_id] = not observed[check_id]
        if criterion.level_from_checks(flipped) != level:
            decisive.append(_margin_confidence(margin))
    return min(decisive) if decisive else 1.0
