"""Observe one rep turn against the scenario: which rubric checks and anchors it shows.

The observer uses the offline judge's sentence encoder (all-MiniLM-L6-v2): each sentence of
the rep's turn, and the whole turn, is compared with the exemplars of the rubric's checks and
with the scenario's good and poor anchor examples. A signal is observed when the best cosine
similarity reaches the threshold. Level-1 checks and poor anchors count as poor signals,
level-3 checks and good anchors as good ones; the roleplay's decide step moves the persona's
emotional meter with them.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from config.rubric import LEVELS, Rubric
from evaluators.embeddings import split_sentences
from scenarios.guard import ProbeKind, detect_probe, is_wrap_up
from scenarios.schema import Scenario

DEFAULT_CHECK_THRESHOLD = 0.62
DEFAULT_ANCHOR_THRESHOLD = 0.62


_CLAUSE_SPLIT = re.compile(r"[,;:]|\s[-\u2013\u2014]\s|\b(?:and|but|so|because|then)\b", re.I)
_WINDOW_SIZES = (5, 8)
_WINDOW_STEP = 3


def turn_units(text: str) -> tuple[list[str], list[str]]:
    """The pieces of a rep turn that are compared: (sentences and the whole turn, finer parts).

    Rubric exemplars are short phrases ("within 3 to 5 working days"), so each sentence is
    also cut into clauses and overlapping windows of five and eight words; anchor examples are
    whole lines and are compared with the coarse pieces only.
    """
    sentences = [text[lo:hi].strip() for lo, hi in split_sentences(text)]
    sentences = [s for s in sentences if s]
    coarse = list(sentences)
    if len(sentences) > 1:
        coarse.append(" ".join(text.split()))
    fine: list[str] = []
    for sentence in sentences:
        parts = [p.strip() for p in _CLAUSE_SPLIT.split(sentence) if p and p.strip()]
        if len(parts) > 1:
            fine.extend(p for p in parts if len(p.split()) >= 2)
        words = sentence.split()
        for size in _WINDOW_SIZES:
            if len(words) <= size:
                continue
            starts = list(range(0, len(words) - size + 1, _WINDOW_STEP))
            if starts[-1] != len(words) - size:
                starts.append(len(words) - size)
            fine.extend(" ".join(words[i : i + size]) for i in starts)
    seen = set(coarse)
    unique_fine = [f for f in dict.fromkeys(fine) if f not in seen]
    return coarse, unique_fine


class TextEncoder(Protocol):
    """What the observer needs from an encoder: unit vectors, one row per text."""

    def encode(self, texts: Sequence[str], *, cache: bool = False) -> NDArray[np.float32]: ...


@dataclass(frozen=True, slots=True)
class SignalHit:
    signal: str
    similarity: float
    quote: str
    """The part of the rep's turn that matched."""
    matched: str
    """The exemplar or anchor example it matched."""
    reaction: str | None = None
    """The persona's scripted reaction, for a matched anchor example that has one."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "signal": self.signal,
            "similarity": round(self.similarity, 4),
            "quote": self.quote,
            "matched": self.matched,
            "reaction": self.reaction,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SignalHit:
        return cls(
            signal=str(data["signal"]),
            similarity=float(data["similarity"]),
            quote=str(data["quote"]),
            matched=str(data["matched"]),
            reaction=data.get("reaction"),
        )


@dataclass(frozen=True, slots=True)
class Observation:
    """What one rep turn showed."""

    hits: dict[str, SignalHit] = field(default_factory=dict)
    good: tuple[str, ...] = ()
    """Good signals: level-3 checks of targeted criteria and good anchors."""
    poor: tuple[str, ...] = ()
    """Poor signals: level-1 checks and poor anchors."""
    probe: ProbeKind | None = None
    wrap_up: bool = False

    @property
    def signals(self) -> set[str]:
        return set(self.hits)

    @property
    def reaction(self) -> str | None:
        """The reaction of the best-matching anchor example, if it has one."""
        anchors = [h for h in self.hits.values() if "." in h.signal and h.reaction]
        if not anchors:
            return None
        return max(anchors, key=lambda h: h.similarity).reaction

    def without(self, signals: set[str]) -> Observation:
        """The same observation with `signals` removed."""
        if not signals & set(self.hits):
            return self
        return Observation(
            hits={s: h for s, h in self.hits.items() if s not in signals},
            good=tuple(s for s in self.good if s not in signals),
            poor=tuple(s for s in self.poor if s not in signals),
            probe=self.probe,
            wrap_up=self.wrap_up,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "hits": [h.as_dict() for h in self.hits.values()],
            "good": list(self.good),
            "poor": list(self.poor),
            "probe": self.probe,
            "wrap_up": self.wrap_up,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Observation:
        hits = [SignalHit.from_dict(h) for h in data.get("hits", [])]
        return cls(
            hits={h.signal: h for h in hits},
            good=tuple(data.get("good", ())),
            poor=tuple(data.get("poor", ())),
            probe=data.get("probe"),
            wrap_up=bool(data.get("wrap_up", False)),
        )


@dataclass(frozen=True, slots=True)
class _Reference:
    signal: str
    text: str
    reaction: str | None
    polarity: int
    """-1 poor, 0 neutral, +1 good."""
    shows: tuple[str, ...] = ()


@dataclass(slots=True)
class _Prepared:
    check_polarity: dict[str, int]
    refs: list[_Reference]
    vectors: NDArray[np.float32]
    """One row per part: an exemplar is one part, an anchor example one part per sentence."""
    owner: NDArray[np.int64]
    """The reference each row belongs to."""
    is_anchor: NDArray[np.bool_]
    """Per row."""
    weight: NDArray[np.float64]
    """Per row: words in the part."""


class TurnObserver:
    """Match rep turns against a scenario's checks and anchors.

    Args:
        encoder: The sentence encoder (`evaluators.embeddings.SentenceEncoder` in production).
        check_threshold: Similarity at which a rubric check's exemplar counts as shown.
        anchor_threshold: Similarity at which a scenario anchor example counts as shown.
    """

    def __init__(
        self,
        encoder: TextEncoder,
        *,
        check_threshold: float = DEFAULT_CHECK_THRESHOLD,
        anchor_threshold: float = DEFAULT_ANCHOR_THRESHOLD,
    ) -> None:
        self._encoder = encoder
        self.check_threshold = check_threshold
        self.anchor_threshold = anchor_threshold
        self._prepared: dict[tuple[str, str], _Prepared] = {}
        self._lock = threading.Lock()

    def _prepare(self, scenario: Scenario, rubric: Rubric) -> _Prepared:
        key = (scenario.slug, rubric.version)
        with self._lock:
            cached = self._prepared.get(key)
        if cached is not None:
            return cached
        targeted = set(scenario.criterion_ids)
        refs: list[_Reference] = []
        for criterion in rubric.criteria_for(scenario.role):
            for level in LEVELS:
                polarity = {1: -1, 2: 0, 3: 1 if criterion.id in targeted else 0}[level]
                for check in criterion.levels[level].checks:
                    if check.speaker == "customer":
                        continue
                    refs.extend(
                        _Reference(check.id, phrase, None, polarity) for phrase in check.exemplars
                    )
        for cid, anchor in scenario.anchors.items():
            for side, polarity in (("good", 1), ("poor", -1)):
                spec = anchor.good if side == "good" else anchor.poor
                refs.extend(
                    _Reference(f"{cid}.{side}", ex.text, ex.reaction, polarity, tuple(ex.shows))
                    for ex in spec.examples
                )
        check_polarity = {r.signal: r.polarity for r in refs if "." not in r.signal}
        texts: list[str] = []
        owner: list[int] = []
        for k, ref in enumerate(refs):
            parts = [ref.text]
            if "." in ref.signal:
                parts = [ref.text[lo:hi] for lo, hi in split_sentences(ref.text)] or parts
            texts.extend(parts)
            owner.extend([k] * len(parts))
        prepared = _Prepared(
            check_polarity=check_polarity,
            refs=refs,
            vectors=self._encoder.encode(texts, cache=True),
            owner=np.asarray(owner, dtype=np.int64),
            is_anchor=np.asarray(["." in refs[k].signal for k in owner], dtype=bool),
            weight=np.asarray([max(1, len(t.split())) for t in texts], dtype=np.float64),
        )
        with self._lock:
            self._prepared[key] = prepared
        return prepared

    def observe(self, text: str, scenario: Scenario, rubric: Rubric) -> Observation:
        """What `text` (one rep turn) shows. Blocking: call it through `asyncio.to_thread`."""
        probe = detect_probe(text)
        wrap_up = is_wrap_up(text)
        coarse, fine = turn_units(text)
        if not coarse:
            return Observation(probe=probe, wrap_up=wrap_up)
        units = coarse + fine
        prepared = self._prepare(scenario, rubric)
        turn_vectors = self._encoder.encode(units)
        similarity = turn_vectors @ prepared.vectors.T
        # anchors are whole example lines: compare them with sentences and the whole turn only
        if fine and prepared.is_anchor.any():
            similarity[len(coarse) :, prepared.is_anchor] = -1.0
        row_unit = similarity.argmax(axis=0)
        row_score = similarity.max(axis=0)
        # an example of several sentences counts by how well its sentences are covered,
        # each weighted by its length, so a short closing remark matters less
        size = len(prepared.refs)
        mass = np.bincount(prepared.owner, weights=prepared.weight, minlength=size)
        totals = np.bincount(prepared.owner, weights=row_score * prepared.weight, minlength=size)
        ref_score = totals / np.maximum(mass, 1e-9)
        best_row = np.full(len(prepared.refs), -1, dtype=np.int64)
        for row, k in enumerate(prepared.owner):
            if best_row[k] < 0 or row_score[row] > row_score[best_row[k]]:
                best_row[k] = row

        hits: dict[str, SignalHit] = {}
        polarity: dict[str, int] = {}
        source: dict[str, _Reference] = {}
        for j, ref in enumerate(prepared.refs):
            score = float(ref_score[j])
            threshold = self.anchor_threshold if "." in ref.signal else self.check_threshold
            current = hits.get(ref.signal)
            if score < threshold or (current is not None and score <= current.similarity):
                continue
            hits[ref.signal] = SignalHit(
                signal=ref.signal,
                similarity=score,
                quote=units[int(row_unit[best_row[j]])],
                matched=ref.text,
                reaction=ref.reaction,
            )
            polarity[ref.signal] = ref.polarity
            source[ref.signal] = ref
        # A turn cannot be both the good and the poor anchor of one criterion: keep the closer.
        for cid in scenario.anchors:
            good, poor = hits.get(f"{cid}.good"), hits.get(f"{cid}.poor")
            if good is not None and poor is not None:
                del hits[f"{cid}.poor" if good.similarity >= poor.similarity else f"{cid}.good"]
        # checks the matched anchor lines demonstrate, as their authors declared
        for signal, hit in list(hits.items()):
            ref = source[signal]
            for shown in ref.shows:
                known = hits.get(shown)
                if known is None or hit.similarity > known.similarity:
                    hits[shown] = SignalHit(shown, hit.similarity, hit.quote, ref.text)
                    polarity[shown] = prepared.check_polarity.get(shown, 0)
        good_signals = tuple(sorted(s for s in hits if polarity[s] > 0))
        poor_signals = tuple(sorted(s for s in hits if polarity[s] < 0))
        return Observation(
            hits=hits, good=good_signals, poor=poor_signals, probe=probe, wrap_up=wrap_up
        )
