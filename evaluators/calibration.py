"""Calibration: do people agree on a criterion, does the judge agree with them, may it go live?

The loop, per rubric version and criterion:

1. Two or more people score the same calls; `import_ratings` loads their CSV
   (columns `rater`, `interaction`, `criterion`, `level`; an optional `source` column picks
   between calls that share an external id; `level` is 1, 2, 3, or N/A / blank).
2. `calibration_report` measures agreement between the people (exact, within one, and
   quadratic-weighted kappa as pairwise means; Krippendorff's ordinal alpha and Fleiss' kappa
   across all of them), forms the consensus of each call, and scores the judge's stored levels
   against that consensus with the same figures.
3. The go-live gate: a criterion is live only when the people reach both thresholds with each
   other and the judge reaches both against their consensus. The report names every reason a
   criterion fails, lists the calls where raters diverge (the widest first), and suggests a
   rewrite when raters are more than one level apart on too many calls.
4. After go-live, `draw_sample` picks scored calls for a periodic human sample; once imported
   (under a set named `sample-...`), the report re-checks the judge against it and names the
   criteria whose agreement has fallen below the gate as drifting.

The consensus of a call is the median of the people's levels. With an even number of levels
the median can fall between two levels; the lower one is taken (a conservative score) and the
call is counted as a tie. A call is N/A by consensus when more than half of its raters say N/A.
Agreement figures use the calls both sides gave a level to; N/A against a level is counted
and listed separately as an applicability disagreement.
"""

from __future__ import annotations

import csv
import io
import logging
import random
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import select as sql_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from config.rubric import LEVELS, Criterion, Rubric, RubricError, RubricLibrary
from config.settings import CalibrationSettings
from evaluators.agreement import (
    BootstrapOptions,
    Estimate,
    PairAgreement,
    RaterAgreement,
    pair_agreement,
    rater_agreement,
)
from evaluators.base import EvaluatorError
from evaluators.scoring import ensure_rubric_versions
from store.models import (
    CriterionGate,
    Evaluation,
    HumanRating,
    Interaction,
    Person,
    RubricVersion,
    Score,
    utcnow,
)

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("rater", "interaction", "criterion", "level")
NA_SPELLINGS = frozenset({"", "n/a", "na", "n.a.", "-", "none", "not applicable"})
SAMPLE_COLUMNS = (
    "rater",
    "interaction",
    "source",
    "criterion",
    "level",
    "criterion_name",
    "started_at",
)
_CHUNK = 500


class CalibrationError(EvaluatorError):
    """Calibration cannot go on; the message names the file, rubric or judge and what to do."""


# -- importing human ratings ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BadRow:
    line: int
    problem: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.problem}"


@dataclass
class ImportReport:
    path: Path
    set_name: str
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    bad: list[BadRow] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return self.inserted + self.updated + self.unchanged


def parse_level(raw: str) -> int | None:
    """`1`, `2`, `3` (also `2.0`) as a level; N/A, NA, `-` or blank as None.

    Raises:
        ValueError: Anything else.
    """
    text = raw.strip()
    if text.lower() in NA_SPELLINGS:
        return None
    try:
        number = float(text)
    except ValueError:
        number = float("nan")
    if number in LEVELS and number == int(number):
        return int(number)
    raise ValueError(f"level `{text}` is not 1, 2, 3 or N/A")


@dataclass(frozen=True, slots=True)
class _Call:
    id: int
    external_id: str
    source: str
    role: str | None


def _load_calls(engine: Engine, external_ids: Iterable[str]) -> dict[str, list[_Call]]:
    wanted = sorted(set(external_ids))
    found: dict[str, list[_Call]] = defaultdict(list)
    with Session(engine) as session:
        for start in range(0, len(wanted), _CHUNK):
            rows = session.exec(
                select(
                    col(Interaction.id), Interaction.external_id, Interaction.source, Person.role
                )
                .join(Person, col(Person.id) == col(Interaction.rep_id))
                .where(col(Interaction.external_id).in_(wanted[start : start + _CHUNK]))
            ).all()
            for iid, external_id, source, role in rows:
                assert iid is not None
                found[external_id].append(_Call(iid, external_id, source, role))
    return found


def _read_csv(path: Path) -> tuple[csv.DictReader[str], list[str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CalibrationError(f"No file `{path}`; give the path of the ratings CSV") from None
    except UnicodeDecodeError as exc:
        raise CalibrationError(
            f"`{path}` is not UTF-8 text (byte {exc.start}); save it as UTF-8 CSV"
        ) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [name.strip().lower() for name in reader.fieldnames or []]
    if not header:
        raise CalibrationError(
            f"`{path}` is empty; it needs a header: {', '.join(REQUIRED_COLUMNS)}"
        )
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise CalibrationError(
            f"`{path}` lacks the column(s) {', '.join(missing)}; found: {', '.join(header)}. "
            f"The header must name {', '.join(REQUIRED_COLUMNS)}"
        )
    reader.fieldnames = header
    return reader, header


@dataclass(frozen=True, slots=True)
class _Rating:
    line: int
    rater: str
    interaction_id: int
    criterion_id: str
    level: int | None
    version: str


def _pick_call(
    calls: dict[str, list[_Call]], external_id: str, source: str
) -> tuple[_Call | None, str | None]:
    candidates = calls.get(external_id, [])
    if source:
        candidates = [c for c in candidates if c.source == source]
    if not candidates:
        where = f" from source `{source}`" if source else ""
        return None, f"unknown interaction `{external_id}`{where}; import the call first"
    if len(candidates) > 1:
        sources = ", ".join(sorted(c.source for c in candidates))
        return None, (
            f"interaction `{external_id}` exists in several sources ({sources}); "
            "add a `source` column to say which"
        )
    return candidates[0], None


def _rubric_criterion(
    rubrics: RubricLibrary, call: _Call, criterion_id: str
) -> tuple[Rubric | None, str | None]:
    if not call.role:
        return None, (
            f"the rep of interaction `{call.external_id}` has no role, so no rubric applies; "
            "set the rep's role first"
        )
    try:
        rubric = rubrics.for_role(call.role)
    except RubricError:
        return None, f"no rubric for role `{call.role}` (interaction `{call.external_id}`)"
    known = [c.id for c in rubric.criteria_for(call.role)]
    if criterion_id not in known:
        return None, (
            f"unknown criterion `{criterion_id}` for rubric `{rubric.role}`; "
            f"known: {', '.join(known)}"
        )
    return rubric, None


def import_ratings(
    engine: Engine, path: Path, rubrics: RubricLibrary, *, set_name: str = "calibration"
) -> ImportReport:
    """Load people's levels from a CSV into `HumanRating`; safe to run again on the same file.

    A row that cannot be used (unknown call or criterion, bad level, missing rater) is reported
    with its line number and skipped; the other rows are stored. A rater's second level for
    the same call and criterion replaces the first (in a later import) or is reported as a
    conflict (within one file).

    Args:
        engine: The database.
        path: The CSV file.
        rubrics: The rubrics; each call's rep's role picks the rubric its criteria come from.
        set_name: The calibration round or sample the ratings belong to.

    Raises:
        CalibrationError: The file is missing, not UTF-8, empty or lacks a required column.
    """
    if not set_name.strip():
        raise CalibrationError("The set name is empty; give one with `--set NAME`")
    reader, header = _read_csv(path)
    report = ImportReport(path=path, set_name=set_name)
    raw_rows: list[tuple[int, dict[str, str]]] = []
    for row in reader:
        line = reader.line_num
        if None in row:
            report.bad.append(BadRow(line, f"more fields than the {len(header)} in the header"))
            continue
        raw_rows.append((line, {k: (v or "").strip() for k, v in row.items() if k}))

    calls = _load_calls(engine, (r["interaction"] for _, r in raw_rows if r["interaction"]))
    ratings: dict[tuple[str, int, str], _Rating] = {}
    used_rubrics: dict[str, Rubric] = {}
    for line, row in raw_rows:
        rater, external_id, criterion_id = row["rater"], row["interaction"], row["criterion"]
        if not rater:
            report.bad.append(BadRow(line, "the rater is empty; put the person's name or id"))
            continue
        if not external_id:
            report.bad.append(BadRow(line, "the interaction is empty; put the call's id"))
            continue
        call, problem = _pick_call(calls, external_id, row.get("source", ""))
        if call is None:
            report.bad.append(BadRow(line, problem or "unknown interaction"))
            continue
        rubric, problem = _rubric_criterion(rubrics, call, criterion_id)
        if rubric is None:
            report.bad.append(BadRow(line, problem or "unknown criterion"))
            continue
        try:
            level = parse_level(row["level"])
        except ValueError as exc:
            report.bad.append(BadRow(line, str(exc)))
            continue
        key = (rater, call.id, criterion_id)
        earlier = ratings.get(key)
        if earlier is not None:
            if earlier.level != level:
                report.bad.append(
                    BadRow(
                        line,
                        f"{rater} rated `{criterion_id}` on `{external_id}` again with a "
                        f"different level (line {earlier.line}); keep one",
                    )
                )
            continue
        ratings[key] = _Rating(line, rater, call.id, criterion_id, level, rubric.version)
        used_rubrics[rubric.version] = rubric

    report.bad.sort(key=lambda bad: bad.line)
    ensure_rubric_versions(engine, used_rubrics.values())
    with Session(engine) as session:
        existing: dict[tuple[str, int, str], HumanRating] = {}
        ids = sorted({r.interaction_id for r in ratings.values()})
        for start in range(0, len(ids), _CHUNK):
            for stored in session.exec(
                select(HumanRating).where(
                    col(HumanRating.interaction_id).in_(ids[start : start + _CHUNK])
                )
            ).all():
                existing[(stored.rater, stored.interaction_id, stored.criterion_id)] = stored
        for key, rating in ratings.items():
            stored_rating = existing.get(key)
            if stored_rating is None:
                session.add(
                    HumanRating(
                        rater=rating.rater,
                        interaction_id=rating.interaction_id,
                        criterion_id=rating.criterion_id,
                        level=rating.level,
                        rubric_version=rating.version,
                        set_name=set_name,
                    )
                )
                report.inserted += 1
                continue
            same = (stored_rating.level, stored_rating.rubric_version, stored_rating.set_name)
            if same == (rating.level, rating.version, set_name):
                report.unchanged += 1
                continue
            stored_rating.level = rating.level
            stored_rating.rubric_version = rating.version
            stored_rating.set_name = set_name
            session.add(stored_rating)
            report.updated += 1
        session.commit()
    logger.info(
        "ratings imported",
        extra={
            "set": set_name,
            "inserted": report.inserted,
            "updated": report.updated,
            "bad_rows": len(report.bad),
        },
    )
    return report


# -- consensus ------------------------------------------------------------------------------


def consensus(levels: Sequence[int | None]) -> tuple[int | None, bool]:
    """The people's consensus level for one call, and whether the median was a tie.

    N/A when more than half say N/A; otherwise the median of the levels, the lower of the two
    middle levels when they differ (a tie).
    """
    rated = sorted(level for level in levels if level is not None)
    if not rated or len(levels) - len(rated) > len(levels) / 2:
        return None, False
    tie = len(rated) % 2 == 0 and rated[len(rated) // 2 - 1] != rated[len(rated) // 2]
    return int(statistics.median_low(rated)), tie


# -- the report -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Divergence:
    """A call where the raters did not all give the same level.

    Attributes:
        spread: Highest minus lowest level given (0 when only N/A differs).
        applicability: Some said N/A and some gave a level.
    """

    interaction_id: int
    external_id: str
    levels: dict[str, int | None]
    consensus: int | None
    judge: int | None
    spread: int
    applicability: bool


@dataclass
class CriterionCalibration:
    """Everything the report says about one criterion.

    Attributes:
        calls: Calls with at least one human rating in the set.
        humans: Agreement among the people.
        judge: The judge against the consensus, when it has scored any of the calls.
        judge_missing: External ids of rated calls the judge has no evaluation for.
        ties: Calls whose consensus was a tie between two levels.
        wide_share: Share of calls rated by two or more where levels were more than one apart.
        failures: Why the criterion is not live (empty when it is).
        rewrite: A suggestion to rewrite the criterion, when raters diverge too often.
        divergent: Calls where raters diverge, the widest first.
    """

    criterion: Criterion
    calls: int
    raters: list[str]
    humans: RaterAgreement
    judge: PairAgreement | None
    judge_missing: list[str]
    ties: int
    wide_share: float | None
    failures: list[str]
    rewrite: str | None
    divergent: list[Divergence]

    @property
    def live(self) -> bool:
        return not self.failures


@dataclass
class DriftCheck:
    """The judge against a post-go-live human sample, for one criterion.

    Attributes:
        status: `drifting`, `holding`, `not live` or `no data`.
    """

    set_name: str
    criterion_id: str
    calls: int
    judge: PairAgreement | None
    status: str
    reasons: list[str]


@dataclass
class RubricCalibration:
    rubric: Rubric
    set_name: str
    judge: str | None
    judge_note: str | None
    criteria: list[CriterionCalibration]
    drift: list[DriftCheck]
    recorded: bool = False

    @property
    def live(self) -> bool:
        return bool(self.criteria) and all(c.live for c in self.criteria)


@dataclass
class CalibrationReport:
    settings: CalibrationSettings
    rubrics: list[RubricCalibration]


@dataclass(frozen=True, slots=True)
class _StoredRating:
    rater: str
    interaction_id: int
    external_id: str
    criterion_id: str
    level: int | None
    set_name: str


def _ratings_for(engine: Engine, version: str) -> list[_StoredRating]:
    query = (
        sql_select(
            col(HumanRating.rater),
            col(HumanRating.interaction_id),
            col(Interaction.external_id),
            col(HumanRating.criterion_id),
            col(HumanRating.level),
            col(HumanRating.set_name),
        )
        .join(Interaction, col(Interaction.id) == col(HumanRating.interaction_id))
        .where(col(HumanRating.rubric_version) == version)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [_StoredRating(*row) for row in rows]


def _judges_on(engine: Engine, version: str, interaction_ids: Sequence[int]) -> dict[str, int]:
    """Judges with scored evaluations on these calls under this version, and how many calls."""
    counts: dict[str, int] = defaultdict(int)
    with Session(engine) as session:
        for start in range(0, len(interaction_ids), _CHUNK):
            for name in session.exec(
                select(Evaluation.judge).where(
                    col(Evaluation.rubric_version) == version,
                    col(Evaluation.status) == "scored",
                    col(Evaluation.interaction_id).in_(interaction_ids[start : start + _CHUNK]),
                )
            ).all():
                counts[name] += 1
    return dict(counts)


def _pick_judge(
    engine: Engine, version: str, interaction_ids: Sequence[int], wanted: str | None
) -> tuple[str | None, str | None]:
    """The judge to hold to the gate, and a note on how it was chosen or why there is none."""
    available = _judges_on(engine, version, interaction_ids)
    if wanted is not None:
        if wanted in available:
            return wanted, None
        matches = [name for name in available if name.startswith(wanted)]
        if len(matches) == 1:
            return matches[0], None
        if len(matches) > 1:
            raise CalibrationError(
                f"Judge `{wanted}` matches several judges: {', '.join(sorted(matches))}; name one"
            )
        return wanted, (
            f"judge `{wanted}` has not scored any of these calls under this rubric version; "
            "run `coachloop score` with that judge first"
        )
    if not available:
        return None, "no judge has scored these calls yet; run `coachloop score` first"
    ranked = sorted(available.items(), key=lambda item: (-item[1], item[0]))
    note = None
    if len(ranked) > 1:
        others = ", ".join(name for name, _ in ranked[1:])
        note = f"chose `{ranked[0][0]}` (most calls scored); others: {others}; pick with --judge"
    return ranked[0][0], note


def _judge_levels(
    engine: Engine, version: str, judge: str, interaction_ids: Sequence[int]
) -> tuple[set[int], dict[tuple[int, str], int | None]]:
    """Calls the judge scored, and its level per (call, criterion)."""
    scored: set[int] = set()
    levels: dict[tuple[int, str], int | None] = {}
    with Session(engine) as session:
        for start in range(0, len(interaction_ids), _CHUNK):
            chunk = interaction_ids[start : start + _CHUNK]
            evaluations = session.exec(
                select(col(Evaluation.id), Evaluation.interaction_id).where(
                    col(Evaluation.rubric_version) == version,
                    col(Evaluation.judge) == judge,
                    col(Evaluation.status) == "scored",
                    col(Evaluation.interaction_id).in_(chunk),
                )
            ).all()
            scored.update(iid for _, iid in evaluations)
            eval_ids = [eid for eid, _ in evaluations]
            for iid, criterion_id, level in session.exec(
                select(Score.interaction_id, Score.criterion_id, Score.level).where(
                    col(Score.evaluation_id).in_(eval_ids)
                )
            ).all():
                levels[(iid, criterion_id)] = level
    return scored, levels


def _pct(x: float) -> str:
    return f"{x:.0%}"


def _gate_failures(
    who: str, agreement: PairAgreement | RaterAgreement, settings: CalibrationSettings
) -> list[str]:
    failures = []
    exact, kappa = agreement.exact, agreement.kappa
    if exact.value is None:
        failures.append(f"{who}: no exact agreement ({exact.reason})")
    elif exact.value < settings.min_exact:
        failures.append(
            f"{who} agree exactly on {_pct(exact.value)} of calls; "
            f"the gate needs {_pct(settings.min_exact)}"
        )
    if kappa.value is None:
        failures.append(f"{who}: weighted kappa is {kappa.reason}; rate calls across all levels")
    elif kappa.value < settings.min_kappa:
        failures.append(
            f"{who} reach a weighted kappa of {kappa.value:.2f}; "
            f"the gate needs {settings.min_kappa:.2f}"
        )
    return failures


def _criterion_calibration(
    criterion: Criterion,
    ratings: Sequence[_StoredRating],
    judge: str | None,
    judge_scored: set[int],
    judge_levels: dict[tuple[int, str], int | None],
    settings: CalibrationSettings,
    bootstrap: BootstrapOptions,
) -> CriterionCalibration:
    mine = [r for r in ratings if r.criterion_id == criterion.id]
    raters = sorted({r.rater for r in mine})
    calls = sorted({(r.interaction_id, r.external_id) for r in mine})
    by_call: dict[int, dict[str, int | None]] = defaultdict(dict)
    for r in mine:
        by_call[r.interaction_id][r.rater] = r.level

    matrix = [[by_call[iid].get(rater) for rater in raters] for iid, _ in calls]
    humans = rater_agreement(matrix, bootstrap=bootstrap)
    consensus_of: dict[int, int | None] = {}
    ties = wide = multi = 0
    divergent: list[Divergence] = []
    for iid, external_id in calls:
        given = by_call[iid]
        level, tie = consensus(list(given.values()))
        consensus_of[iid] = level
        ties += tie
        rated = [lvl for lvl in given.values() if lvl is not None]
        spread = max(rated) - min(rated) if rated else 0
        applicability = 0 < len(rated) < len(given)
        if len(rated) >= 2:
            multi += 1
            wide += spread > 1
        if spread or applicability:
            divergent.append(
                Divergence(
                    iid,
                    external_id,
                    dict(sorted(given.items())),
                    level,
                    judge_levels.get((iid, criterion.id)),
                    spread,
                    applicability,
                )
            )
    divergent.sort(key=lambda d: (d.spread <= 1, not d.applicability, -d.spread, d.external_id))
    wide_share = wide / multi if multi else None

    failures: list[str] = []
    if len(raters) < 2:
        failures.append("needs ratings from at least two people on the same calls")
    elif humans.n < settings.min_calls:
        failures.append(
            f"only {humans.n} calls rated by two or more people; the gate needs "
            f"{settings.min_calls}"
        )
    if len(raters) >= 2 and humans.n:
        failures.extend(_gate_failures("raters", humans, settings))

    judge_agreement: PairAgreement | None = None
    missing = [ext for iid, ext in calls if iid not in judge_scored]
    if judge is None:
        failures.append("no judge scores to compare with the consensus")
    else:
        compared = [iid for iid, _ in calls if iid in judge_scored]
        if not compared:
            failures.append(f"judge `{judge}` has not scored any of these calls")
        else:
            judge_agreement = pair_agreement(
                [judge_levels.get((iid, criterion.id)) for iid in compared],
                [consensus_of[iid] for iid in compared],
                bootstrap=bootstrap,
            )
            failures.extend(
                _gate_failures("the judge and the consensus", judge_agreement, settings)
            )

    rewrite = None
    if wide_share is not None and wide_share > settings.rewrite_share:
        rewrite = (
            f"raters are more than one level apart on {_pct(wide_share)} of calls (over "
            f"{_pct(settings.rewrite_share)}): rewrite `{criterion.id}` so its level anchors and "
            "checks describe observable behaviour that separates 1 from 3"
        )
    return CriterionCalibration(
        criterion=criterion,
        calls=len(calls),
        raters=raters,
        humans=humans,
        judge=judge_agreement,
        judge_missing=missing,
        ties=ties,
        wide_share=wide_share,
        failures=failures,
        rewrite=rewrite,
        divergent=divergent,
    )


def _live_criteria(engine: Engine, version: str, judge: str | None) -> set[str]:
    if judge is None:
        return set()
    with Session(engine) as session:
        rows = session.exec(
            select(CriterionGate.criterion_id).where(
                col(CriterionGate.rubric_version) == version,
                col(CriterionGate.judge) == judge,
                col(CriterionGate.live).is_(True),
            )
        ).all()
    return set(rows)


def _drift_checks(
    rubric: Rubric,
    ratings: Sequence[_StoredRating],
    judge: str | None,
    judge_scored: set[int],
    judge_levels: dict[tuple[int, str], int | None],
    live: set[str],
    settings: CalibrationSettings,
    bootstrap: BootstrapOptions,
) -> list[DriftCheck]:
    sets = sorted({r.set_name for r in ratings if r.set_name.startswith(settings.sample_prefix)})
    checks: list[DriftCheck] = []
    for set_name in sets:
        in_set = [r for r in ratings if r.set_name == set_name]
        for criterion in rubric.criteria:
            mine = [r for r in in_set if r.criterion_id == criterion.id]
            by_call: dict[int, list[int | None]] = defaultdict(list)
            for r in mine:
                by_call[r.interaction_id].append(r.level)
            compared = sorted(iid for iid in by_call if iid in judge_scored)
            if judge is None or not compared:
                checks.append(DriftCheck(set_name, criterion.id, len(by_call), None, "no data", []))
                continue
            agreement = pair_agreement(
                [judge_levels.get((iid, criterion.id)) for iid in compared],
                [consensus(by_call[iid])[0] for iid in compared],
                bootstrap=bootstrap,
            )
            reasons = []
            exact, kappa = agreement.exact, agreement.kappa
            if exact.value is not None and exact.value < settings.min_exact:
                reasons.append(
                    f"exact agreement {_pct(exact.value)} is below {_pct(settings.min_exact)}"
                )
            if kappa.value is not None and kappa.value < settings.min_kappa:
                reasons.append(
                    f"weighted kappa {kappa.value:.2f} is below {settings.min_kappa:.2f}"
                )
            if criterion.id not in live:
                status = "not live"
            elif reasons:
                status = "drifting"
            else:
                status = "holding"
            if kappa.value is None and agreement.n:
                reasons.append(f"kappa {kappa.reason}")
            checks.append(
                DriftCheck(set_name, criterion.id, len(compared), agreement, status, reasons)
            )
    return checks


def _value(estimate: Estimate) -> float | None:
    return estimate.value


def _record_gate(engine: Engine, calibration: RubricCalibration, judge: str, now: datetime) -> None:
    version = calibration.rubric.version
    ensure_rubric_versions(engine, [calibration.rubric])
    with Session(engine) as session:
        stored = {
            gate.criterion_id: gate
            for gate in session.exec(
                select(CriterionGate).where(
                    col(CriterionGate.rubric_version) == version, col(CriterionGate.judge) == judge
                )
            ).all()
        }
        for item in calibration.criteria:
            gate = stored.get(item.criterion.id) or CriterionGate(
                rubric_version=version, criterion_id=item.criterion.id, judge=judge
            )
            was_live = gate.live
            gate.live = item.live
            gate.reason = "; ".join(item.failures) or None
            gate.calls = item.humans.n
            gate.human_exact = _value(item.humans.exact)
            gate.human_kappa = _value(item.humans.kappa)
            gate.judge_exact = _value(item.judge.exact) if item.judge else None
            gate.judge_kappa = _value(item.judge.kappa) if item.judge else None
            gate.decided_at = now
            if item.live and not was_live:
                gate.live_since = now
            elif not item.live:
                gate.live_since = None
            session.add(gate)
        session.flush()

        # a version is live when, for some judge, every one of its criteria is live
        gates = session.exec(
            select(CriterionGate).where(col(CriterionGate.rubric_version) == version)
        ).all()
        criteria = {c.id for c in calibration.rubric.criteria}
        live_by_judge: dict[str, set[str]] = defaultdict(set)
        for gate in gates:
            if gate.live:
                live_by_judge[gate.judge].add(gate.criterion_id)
        row = session.get(RubricVersion, version)
        assert row is not None
        row.live = any(criteria <= live for live in live_by_judge.values())
        session.add(row)
        session.commit()
    logger.info(
        "calibration gate recorded",
        extra={
            "rubric": calibration.rubric.role,
            "version": version,
            "judge": judge,
            "live": [c.criterion.id for c in calibration.criteria if c.live],
        },
    )


def _rubrics_to_report(engine: Engine, rubrics: RubricLibrary, role: str | None) -> list[Rubric]:
    if role is not None:
        try:
            return [rubrics.for_role(role)]
        except RubricError as exc:
            raise CalibrationError(str(exc)) from None
    with Session(engine) as session:
        rated = set(session.exec(select(HumanRating.rubric_version).distinct()).all())
    return [rubric for rubric in rubrics.rubrics if rubric.version in rated]


def calibration_report(
    engine: Engine,
    rubrics: RubricLibrary,
    settings: CalibrationSettings,
    *,
    role: str | None = None,
    judge: str | None = None,
    set_name: str | None = None,
    record: bool = True,
    now: datetime | None = None,
) -> CalibrationReport:
    """Agreement, the go-live gate and drift for each rubric with human ratings.

    Args:
        engine: The database.
        rubrics: The current rubrics; ratings count for the version they were imported under.
        settings: Gate thresholds, rewrite share, bootstrap options and set names.
        role: Only the rubric for this role.
        judge: The judge to hold to the gate (stored name or a unique prefix); by default
            the judge that scored most of the rated calls.
        set_name: The calibration set; default `settings.calibration_set`.
        record: Store the gate decision per criterion and mark the rubric version live.
        now: The decision time (default: now).

    Raises:
        CalibrationError: Unknown role, an ambiguous judge, or no ratings for `role`.
    """
    calibration_set = set_name or settings.calibration_set
    bootstrap = BootstrapOptions(
        resamples=settings.bootstrap_resamples, confidence=settings.confidence, seed=settings.seed
    )
    moment = now or utcnow()
    results: list[RubricCalibration] = []
    for rubric in _rubrics_to_report(engine, rubrics, role):
        ratings = _ratings_for(engine, rubric.version)
        if not ratings:
            raise CalibrationError(
                f"No human ratings for rubric `{rubric.role}` (version {rubric.version}); "
                "import some with `coachloop calibrate import FILE.csv`"
            )
        call_ids = sorted({r.interaction_id for r in ratings})
        chosen, note = _pick_judge(engine, rubric.version, call_ids, judge)
        scored, levels = (
            _judge_levels(engine, rubric.version, chosen, call_ids) if chosen else (set(), {})
        )
        in_set = [r for r in ratings if r.set_name == calibration_set]
        criteria = [
            _criterion_calibration(c, in_set, chosen, scored, levels, settings, bootstrap)
            for c in rubric.criteria
        ]
        calibration = RubricCalibration(
            rubric=rubric,
            set_name=calibration_set,
            judge=chosen,
            judge_note=note,
            criteria=criteria,
            drift=[],
        )
        if record and chosen is not None and scored and in_set:
            _record_gate(engine, calibration, chosen, moment)
            calibration.recorded = True
        live = _live_criteria(engine, rubric.version, chosen)
        calibration.drift = _drift_checks(
            rubric, ratings, chosen, scored, levels, live, settings, bootstrap
        )
        results.append(calibration)
    return CalibrationReport(settings=settings, rubrics=results)


# -- periodic samples after go-live ---------------------------------------------------------


@dataclass
class SampleReport:
    path: Path
    set_name: str
    calls: int
    rows: int
    available: int


def draw_sample(
    engine: Engine,
    rubrics: RubricLibrary,
    *,
    size: int,
    out: Path,
    judge: str | None = None,
    settings: CalibrationSettings | None = None,
    seed: int | None = None,
    since: datetime | None = None,
    now: datetime | None = None,
) -> SampleReport:
    """Pick scored calls since go-live for people to rate, and write them as a CSV to fill in.

    Only calls the live judge scored after its criteria went live (or after `since`), and
    that nobody has rated yet, are drawn. Each row asks for one live criterion of one call;
    raters fill in `rater` and `level` and import the file with `--set` the returned set name.

    Raises:
        ValueError: `size` below 1.
        CalibrationError: Nothing is live yet.
    """
    if size < 1:
        raise ValueError(f"Sample size must be at least 1, got `{size}`")
    options = settings or CalibrationSettings()
    moment = now or utcnow()
    by_version = {rubric.version: rubric for rubric in rubrics.rubrics}
    with Session(engine) as session:
        query = select(CriterionGate).where(col(CriterionGate.live).is_(True))
        if judge is not None:
            query = query.where(col(CriterionGate.judge).startswith(judge))
        gates = [g for g in session.exec(query).all() if g.rubric_version in by_version]
        if not gates:
            raise CalibrationError(
                "No criterion of a current rubric is live yet"
                + (f" for judge `{judge}`" if judge else "")
                + "; pass the gate with `coachloop calibrate report` first"
            )
        live: dict[tuple[str, str], list[CriterionGate]] = defaultdict(list)
        for gate in gates:
            live[(gate.rubric_version, gate.judge)].append(gate)
        rated = select(HumanRating.interaction_id).distinct()
        candidates: list[tuple[Rubric, list[str], Interaction, str | None]] = []
        for (version, judge_name), version_gates in sorted(live.items()):
            start = since or min(g.live_since or g.decided_at for g in version_gates)
            rows = session.exec(
                select(Interaction, Person.role)
                .join(Evaluation, col(Evaluation.interaction_id) == col(Interaction.id))
                .join(Person, col(Person.id) == col(Interaction.rep_id))
                .where(
                    col(Evaluation.rubric_version) == version,
                    col(Evaluation.judge) == judge_name,
                    col(Evaluation.status) == "scored",
                    col(Interaction.started_at) >= start,
                    col(Interaction.id).not_in(rated),
                )
                .order_by(col(Interaction.id))
            ).all()
            ids = sorted(g.criterion_id for g in version_gates)
            candidates.extend((by_version[version], ids, call, role) for call, role in rows)

    picked = random.Random(seed).sample(candidates, min(size, len(candidates)))
    picked.sort(key=lambda item: (item[2].started_at, item[2].id or 0))
    set_name = f"{options.sample_prefix}-{moment:%Y-%m-%d}"
    out.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with out.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(SAMPLE_COLUMNS)
        for rubric, criterion_ids, call, role in picked:
            for criterion in rubric.criteria_for(role):
                if criterion.id not in criterion_ids:
                    continue
                writer.writerow(
                    [
                        "",
                        call.external_id,
                        call.source,
                        criterion.id,
                        "",
                        criterion.name,
                        call.started_at.isoformat(),
                    ]
                )
                written += 1
    logger.info(
        "drift sample drawn",
        extra={"set": set_name, "calls": len(picked), "available": len(candidates)},
    )
    return SampleReport(
        path=out, set_name=set_name, calls=len(picked), rows=written, available=len(candidates)
    )
