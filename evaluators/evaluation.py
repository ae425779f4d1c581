"""How well the offline judge agrees with people, on a labelled JSONL set.

A labelled set has one JSON object per line: `id`, `turns` (`[{"speaker", "text"}]`),
optionally `target_turn` (the judged turn; the turns before it are its context) and `labels`
(`{criterion: level}`). The judge is shown the turns up to the judged one and nothing else:
never the labels, the annotators' rationales or any other field.

Levels can come from the rubric's check rule alone (zero-shot), from a model learnt on a
separate labelled file, or from K-fold cross-validation inside the set: each fold is scored
by a model learnt on the other folds only. Items that share a conversation (a turn of some
length in common) stay in the same fold, so context never leaks from training into scoring.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config.rubric import LEVELS, Rubric, RubricError, load_rubric
from evaluators.agreement import BootstrapOptions, PairAgreement, pair_agreement
from evaluators.base import EvaluatorError, Transcript, TurnView, Unscored, Verdict
from evaluators.offline import LabelledExample, LevelModel, OfflineJudge, fingerprint

logger = logging.getLogger(__name__)

EVAL_RUBRIC_DIR = Path(__file__).parent / "data" / "eval-rubrics"
SPEAKERS = ("agent", "customer")
_GROUP_MIN_CHARS = 40
"""Turns at least this long tie two items to one conversation (short ones like "Yeah." recur)."""

Progress = Callable[[int, int], None]


class LabelFileError(EvaluatorError):
    """A labelled set that cannot be used at all; the message names the file and the fix."""


@dataclass(frozen=True, slots=True)
class LabelledItem:
    id: str
    line: int
    transcript: Transcript
    """What the judge may see: the turns up to the judged one, and which one that is."""
    labels: dict[str, int | None]


@dataclass(frozen=True, slots=True)
class LabelFile:
    path: Path
    items: list[LabelledItem]
    set_aside: list[str]
    """One `file:line: reason` entry per line that could not be used."""

    @property
    def criteria(self) -> list[str]:
        return sorted({c for item in self.items for c in item.labels})


def _transcript(record: Mapping[str, Any]) -> Transcript:
    turns = record.get("turns")
    if not isinstance(turns, list) or not turns:
        raise ValueError("`turns` must be a non-empty list of {speaker, text} objects")
    views: list[TurnView] = []
    for n, turn in enumerate(turns):
        if not isinstance(turn, dict) or not isinstance(turn.get("text"), str):
            raise ValueError(f"turn {n} needs a `text` string")
        speaker = turn.get("speaker")
        views.append(
            TurnView(idx=n, speaker=speaker if speaker in SPEAKERS else "other", text=turn["text"])
        )
    target = record.get("target_turn")
    if target is None:
        return Transcript(turns=views)
    if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < len(views):
        raise ValueError(f"`target_turn` must be null or a turn index 0-{len(views) - 1}")
    return Transcript(turns=views[: target + 1], target_turn=target)


def _labels(record: Mapping[str, Any]) -> dict[str, int | None]:
    labels = record.get("labels", {})
    if not isinstance(labels, dict):
        raise ValueError("`labels` must be an object of criterion: level")
    out: dict[str, int | None] = {}
    for criterion, level in labels.items():
        if level is not None and (isinstance(level, bool) or level not in LEVELS):
            raise ValueError(f"label `{criterion}` is {level!r}; levels are 1, 2, 3 or null")
        out[str(criterion)] = level
    return out


def load_labels(path: Path) -> LabelFile:
    """Read a labelled JSONL set; a bad line is named and set aside, the rest are used.

    Raises:
        LabelFileError: the file is missing or holds no usable line.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LabelFileError(f"{path}: no such labels file") from None
    except UnicodeDecodeError as exc:
        raise LabelFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    items: list[LabelledItem] = []
    set_aside: list[str] = []
    seen: dict[str, int] = {}
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{line_no}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            set_aside.append(f"{where}: not valid JSON ({exc.msg}, column {exc.colno})")
            continue
        if not isinstance(record, dict):
            set_aside.append(f"{where}: each line must be a JSON object")
            continue
        item_id = record.get("id")
        if not isinstance(item_id, str | int) or isinstance(item_id, bool) or item_id == "":
            set_aside.append(f"{where}: `id` is missing (a string or a number)")
            continue
        item_id = str(item_id)
        if item_id in seen:
            set_aside.append(f"{where}: id `{item_id}` repeats line {seen[item_id]}")
            continue
        try:
            transcript = _transcript(record)
            labels = _labels(record)
        except ValueError as exc:
            set_aside.append(f"{where}: {exc}")
            continue
        seen[item_id] = line_no
        items.append(LabelledItem(item_id, line_no, transcript, labels))
    if not items:
        first = f"; first problem: {set_aside[0]}" if set_aside else ""
        raise LabelFileError(f"{path}: no usable labelled items{first}")
    return LabelFile(path, items, set_aside)


def find_rubrics(
    criteria: Sequence[str], *, rubric: Rubric | None, library: Iterable[Rubric] = ()
) -> dict[str, Rubric]:
    """The rubric that defines each criterion: `rubric` if given, else the evaluation rubrics
    shipped with the judge, then `library`.

    Raises:
        LabelFileError: a criterion that no rubric defines (the message lists the known ones).
    """
    candidates = [rubric] if rubric is not None else [*_eval_rubrics(), *library]
    by_criterion: dict[str, Rubric] = {}
    for r in candidates:
        for c in r.criteria:
            by_criterion.setdefault(c.id, r)
    missing = [c for c in criteria if c not in by_criterion]
    if missing:
        where = f"rubric `{rubric.role}`" if rubric is not None else "any rubric"
        known = ", ".join(sorted(by_criterion)) or "none"
        raise LabelFileError(
            f"no criterion `{'`, `'.join(missing)}` in {where}; known criteria: {known}. "
            "Write a rubric for it and pass it with --rubric"
        )
    return {c: by_criterion[c] for c in criteria}


def _eval_rubrics() -> list[Rubric]:
    rubrics: list[Rubric] = []
    for path in sorted(EVAL_RUBRIC_DIR.glob("*.yaml")):
        try:
            rubrics.append(load_rubric(path))
        except RubricError:
            logger.exception("evaluation rubric not loaded", extra={"path": str(path)})
    return rubrics


@dataclass(frozen=True, slots=True)
class PublishedFigures:
    """Figures a labelled set's README states: human agreement and a plain baseline (QWK)."""

    human: dict[str, float] = field(default_factory=dict)
    baseline: dict[str, float] = field(default_factory=dict)


def published_figures(directory: Path) -> PublishedFigures:
    """Read the human level and the plain baseline per criterion from `README.md`, if any.

    The README states them in prose: a paragraph starting "Human level" with entries like
    "`reflection` 0.74", and one mentioning "plain baseline" with entries like
    "0.54 (`emotional_reactions`)".
    """
    readme = directory / "README.md"
    if not readme.is_file():
        return PublishedFigures()
    paragraphs = re.split(r"\n\s*\n", readme.read_text(encoding="utf-8", errors="replace"))
    human: dict[str, float] = {}
    baseline: dict[str, float] = {}
    for paragraph in paragraphs:
        if paragraph.lstrip().lower().startswith("human level"):
            for name, value in re.findall(r"`([A-Za-z0-9_\-]+)`\s+(\d\.\d+)", paragraph):
                human[name] = float(value)
        if "plain baseline" in paragraph.lower():
            for value, name in re.findall(r"(\d\.\d+)\s+\(`([A-Za-z0-9_\-]+)`\)", paragraph):
                baseline[name] = float(value)
    return PublishedFigures(human, baseline)


def conversation_groups(items: Sequence[LabelledItem]) -> list[int]:
    """A group number per item; items sharing a turn of some length share a group."""
    parent = list(range(len(items)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, item in enumerate(items):
        for turn in item.transcript.turns:
            key = " ".join(turn.text.lower().split())
            if len(key) < _GROUP_MIN_CHARS:
                continue
            if key in owner:
                parent[root(i)] = root(owner[key])
            else:
                owner[key] = i
    roots = [root(i) for i in range(len(items))]
    numbers = {r: n for n, r in enumerate(dict.fromkeys(roots))}
    return [numbers[r] for r in roots]


@dataclass(frozen=True, slots=True)
class AgreementRow:
    """Agreement of one way of scoring one criterion with the human labels."""

    criterion_id: str
    method: str
    labels_learnt: int
    """Human labels the levels were learnt from (per fold under cross-validation); 0: rule."""
    scored: int
    not_scored: int
    agreement: PairAgreement


@dataclass(frozen=True, slots=True)
class CriterionReport:
    criterion_id: str
    rubric: str
    n: int
    label_counts: dict[int, int]
    majority_level: int
    majority: PairAgreement
    rows: list[AgreementRow]
    human_kappa: float | None
    published_baseline: float | None


@dataclass(slots=True)
class EvaluationResult:
    reports: list[CriterionReport] = field(default_factory=list)
    predictions: list[dict[str, Any]] = field(default_factory=list)
    """`{"id", "criterion", "level"}` from each criterion's headline method."""
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class EvaluationPlan:
    calibrate_on: Sequence[LabelledItem] = ()
    folds: int | None = None
    seed: int = 0
    save_models: bool = True
    batch_size: int = 64
    bootstrap: BootstrapOptions = field(default_factory=BootstrapOptions)


async def _levels(
    judge: OfflineJudge,
    rubric: Rubric,
    criterion_id: str,
    items: Sequence[LabelledItem],
    batch_size: int,
    tick: Callable[[int], None],
) -> list[int | None]:
    levels: list[int | None] = []
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        verdicts = await judge.evaluate_many([i.transcript for i in chunk], rubric)
        for verdict in verdicts:
            levels.append(_level_of(verdict, criterion_id))
        tick(len(chunk))
    return levels


def _level_of(verdict: Verdict | Unscored, criterion_id: str) -> int | None:
    if isinstance(verdict, Unscored):
        return None
    return verdict.levels().get(criterion_id)


def _training(
    candidates: Iterable[LabelledItem], criterion_id: str, scored: Sequence[LabelledItem]
) -> tuple[list[LabelledExample], int]:
    """Labelled examples for a criterion, without the items being scored (by id or content)."""
    ids = {i.id for i in scored}
    prints = {fingerprint(i.transcript) for i in scored}
    out: list[LabelledExample] = []
    dropped = 0
    for item in candidates:
        level = item.labels.get(criterion_id)
        if level is None:
            continue
        if item.id in ids or fingerprint(item.transcript) in prints:
            dropped += 1
            continue
        out.append(LabelledExample(item.transcript, level))
    return out, dropped


def _fold_index(items: Sequence[LabelledItem], gold: Sequence[int], k: int, seed: int) -> list[int]:
    from sklearn.model_selection import StratifiedGroupKFold

    groups = conversation_groups(items)
    if len(set(groups)) < k:
        raise LabelFileError(
            f"--folds {k} needs at least {k} separate conversations; the set has "
            f"{len(set(groups))}. Use fewer folds"
        )
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    fold = [0] * len(items)
    for number, (_, test) in enumerate(splitter.split(gold, gold, groups)):
        for i in test:
            fold[int(i)] = number
    return fold


async def evaluate_labels(
    judge: OfflineJudge,
    labels: LabelFile,
    rubrics: Mapping[str, Rubric],
    *,
    plan: EvaluationPlan | None = None,
    progress: Progress | None = None,
) -> EvaluationResult:
    """Score every labelled item per criterion and measure agreement with the labels.

    Each criterion gets a row for the check rule (zero-shot) and, when it learns, a row for
    the learnt levels; the learnt row is the headline and goes into the predictions.
    """
    plan = plan or EvaluationPlan()
    if plan.folds is not None and plan.folds < 2:
        raise LabelFileError("--folds must be 2 or more")
    published = published_figures(labels.path.parent)
    result = EvaluationResult()
    work: list[tuple[str, list[LabelledItem], list[int]]] = []
    for criterion_id in rubrics:
        items = [i for i in labels.items if i.labels.get(criterion_id) is not None]
        if not items:
            known = ", ".join(labels.criteria) or "none"
            raise LabelFileError(
                f"{labels.path}: no item has a `{criterion_id}` label; labelled criteria: {known}"
            )
        work.append((criterion_id, items, [int(i.labels[criterion_id] or 0) for i in items]))
    learns = plan.folds is not None or bool(plan.calibrate_on)
    total = sum(len(items) * (2 if learns else 1) for _, items, _ in work)
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    for criterion_id, items, gold in work:
        rubric = rubrics[criterion_id]
        rows: list[AgreementRow] = []
        saved = judge.model_for(rubric, criterion_id)
        scored_prints = {fingerprint(i.transcript) for i in items}

        judge.use_model(None, rubric=rubric, criterion_id=criterion_id)
        rule = await _levels(judge, rubric, criterion_id, items, plan.batch_size, tick)
        rows.append(_row(criterion_id, "check rule (zero-shot)", 0, gold, rule, plan))
        headline = rule

        if plan.folds is not None:
            learnt, per_fold = await _cross_validate(
                judge, rubric, criterion_id, items, gold, plan, tick
            )
            rows.append(
                _row(
                    criterion_id,
                    f"learnt, {plan.folds}-fold CV",
                    per_fold,
                    gold,
                    learnt,
                    plan,
                )
            )
            headline = learnt
        elif plan.calibrate_on:
            training, dropped = _training(plan.calibrate_on, criterion_id, items)
            if dropped:
                result.notes.append(
                    f"{criterion_id}: {dropped} training items are also being scored and were "
                    "left out of training"
                )
            model = await judge.learn(
                rubric,
                criterion_id,
                training,
                save=plan.save_models,
                exclude=[i.transcript for i in items],
            )
            saved = model
            learnt = await _levels(judge, rubric, criterion_id, items, plan.batch_size, tick)
            rows.append(
                _row(criterion_id, "learnt (--calibrate-on)", model.n_labels, gold, learnt, plan)
            )
            headline = learnt
        elif saved is not None:
            if scored_prints & saved.fingerprints:
                result.notes.append(
                    f"{criterion_id}: the saved model was learnt on items of this set; "
                    "not used (learn on another file with --calibrate-on, or use --folds)"
                )
            else:
                judge.use_model(saved, rubric=rubric, criterion_id=criterion_id)
                learnt = await _levels(judge, rubric, criterion_id, items, plan.batch_size, tick)
                rows.append(_row(criterion_id, "saved model", saved.n_labels, gold, learnt, plan))
                headline = learnt
        # leave the judge as it was, plus any model learnt (and saved) from --calibrate-on
        judge.use_model(saved, rubric=rubric, criterion_id=criterion_id)

        for item, level in zip(items, headline, strict=True):
            if level is not None:
                result.predictions.append(
                    {"id": item.id, "criterion": criterion_id, "level": level}
                )
        counts = Counter(gold)
        majority_level = max(LEVELS, key=lambda lvl: (counts[lvl], -lvl))
        result.reports.append(
            CriterionReport(
                criterion_id=criterion_id,
                rubric=rubric.role,
                n=len(items),
                label_counts={lvl: counts[lvl] for lvl in LEVELS},
                majority_level=majority_level,
                majority=pair_agreement(
                    list(gold),
                    [majority_level] * len(gold),
                    bootstrap=BootstrapOptions(resamples=0),
                ),
                rows=rows,
                human_kappa=published.human.get(criterion_id),
                published_baseline=published.baseline.get(criterion_id),
            )
        )
    return result


async def _cross_validate(
    judge: OfflineJudge,
    rubric: Rubric,
    criterion_id: str,
    items: Sequence[LabelledItem],
    gold: Sequence[int],
    plan: EvaluationPlan,
    tick: Callable[[int], None],
) -> tuple[list[int | None], int]:
    assert plan.folds is not None
    fold = _fold_index(items, gold, plan.folds, plan.seed)
    extra, _ = _training(plan.calibrate_on, criterion_id, items)
    levels: list[int | None] = [None] * len(items)
    sizes: list[int] = []
    for k in range(plan.folds):
        test = [i for i in range(len(items)) if fold[i] == k]
        train = [
            LabelledExample(items[i].transcript, gold[i]) for i in range(len(items)) if fold[i] != k
        ]
        model: LevelModel = await judge.learn(
            rubric,
            criterion_id,
            [*train, *extra],
            save=False,
            exclude=[items[i].transcript for i in test],
        )
        sizes.append(model.n_labels)
        scored = await _levels(
            judge, rubric, criterion_id, [items[i] for i in test], plan.batch_size, tick
        )
        for i, level in zip(test, scored, strict=True):
            levels[i] = level
    return levels, round(sum(sizes) / len(sizes))


def _row(
    criterion_id: str,
    method: str,
    labels_learnt: int,
    gold: Sequence[int],
    predicted: Sequence[int | None],
    plan: EvaluationPlan,
) -> AgreementRow:
    agreement = pair_agreement(list(gold), list(predicted), bootstrap=plan.bootstrap)
    missing = sum(1 for p in predicted if p is None)
    return AgreementRow(
        criterion_id=criterion_id,
        method=method,
        labels_learnt=labels_learnt,
        scored=len(predicted) - missing,
        not_scored=missing,
        agreement=agreement,
    )


def write_predictions(path: Path, predictions: Sequence[Mapping[str, Any]]) -> None:
    """Write `{"id", "criterion", "level"}` lines, the format `eval_agreement.py` reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for entry in predictions:
            fh.write(json.dumps(dict(entry), ensure_ascii=False) + "\n")
