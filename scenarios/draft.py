"""Draft a scenario from a real low-scoring call, for an author to review.

The draft keeps what made the call hard: the customer's situation and their own phrases, the
criterion that scored lowest (from the stored `Score` rows), and the rep's words at that
moment as the poor anchor. The good anchor is the rubric's level-3 anchor and examples. Card
numbers, phone numbers, e-mail addresses and postcodes are redacted. The draft always loads
and lints as a scenario, so the author edits a working file rather than a template.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from config.rubric import Criterion, Rubric, RubricError, RubricLibrary
from evaluators.redact import redact
from personas import Persona
from scenarios.library import ScenarioError, ScenarioLibrary, parse_scenario
from store.models import Evaluation, Interaction, Person, RubricVersion, Score, Speaker, Turn

_POSTCODE = re.compile(r"\b[A-Z]{1,2}[0-9][A-Z0-9]?\s*[0-9][A-Z]{2}\b", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"[{}]")
_MIN_WORDS = 4


class DraftError(ScenarioError):
    """The interaction cannot be drafted from; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Draft:
    slug: str
    criterion_id: str
    level: int
    yaml_text: str


def _clean(text: str) -> str:
    text = _POSTCODE.sub("[POSTCODE]", redact(text))
    # braces would read as company placeholders when the draft is loaded
    return " ".join(_PLACEHOLDER.sub("", text).split())


def _lowest(scores: list[Score], rubric: Rubric, wanted: str | None) -> tuple[Score, Criterion]:
    criteria = {c.id: c for c in rubric.criteria}
    weights = rubric.weights()
    scored = [s for s in scores if s.level is not None and s.criterion_id in criteria]
    if wanted is not None:
        chosen = [s for s in scored if s.criterion_id == wanted]
        if not chosen:
            known = ", ".join(sorted(s.criterion_id for s in scored)) or "none"
            raise DraftError(f"Criterion `{wanted}` was not scored on this call; scored: {known}")
        return chosen[0], criteria[wanted]
    if not scored:
        raise DraftError("Every criterion was N/A on this call; choose another call")
    low = min(scored, key=lambda s: (s.level or 0, -weights.get(s.criterion_id, 0)))
    if (low.level or 0) >= 3:
        raise DraftError(
            "Every criterion scored 3 on this call; draft from a low-scoring call, or name "
            "the criterion with --criterion"
        )
    return low, criteria[low.criterion_id]


def _rep_moment(score: Score, criterion: Criterion, turns: list[Turn]) -> str | None:
    """The rep's words where the criterion fell short: level-1 evidence first, then level 2."""
    level_one = {check.id for check in criterion.levels[1].checks}
    below_top = level_one | {check.id for check in criterion.levels[2].checks}
    by_idx = {t.idx: t for t in turns}
    for check in sorted(score.checks, key=lambda c: c.get("id") not in level_one):
        if not check.get("observed") or check.get("id") not in below_top:
            continue
        if check.get("quote"):
            return str(check["quote"])
        index = check.get("turn")
        turn = by_idx.get(index) if isinstance(index, int) else None
        if turn is not None and turn.speaker == Speaker.agent:
            return turn.text
    return None


def _choose_persona(library: ScenarioLibrary, role: str, criterion_id: str) -> Persona:
    kind = "advisor" if role == "team-lead" else "customer"
    candidates = library.find(role=role, criterion=criterion_id) or library.find(role=role)
    for scenario in candidates:
        persona = library.persona_for(scenario)
        if persona.kind == kind:
            return persona
    fitting = library.personas.find(kind=kind)
    if not fitting:
        raise DraftError(f"The persona library has no {kind}; add one before drafting")
    return fitting[0]


def _closing(kind: str) -> dict[str, list[str]]:
    if kind == "advisor":
        return {
            "resolved": ["Okay. I know what I'm doing differently, then. Thanks."],
            "unresolved": ["Right. I'm still not sure what you want me to change, but okay."],
            "walked_out": ["I need to get back on the phones. Can we pick this up later?"],
        }
    return {
        "resolved": ["Right, thank you. That's what I needed to know."],
        "unresolved": ["Okay. I'm still not sure what happens next, but thanks."],
        "walked_out": ["I'll call back another time. Goodbye."],
    }


def build_draft(
    interaction: Interaction,
    turns: list[Turn],
    score: Score,
    criterion: Criterion,
    rubric: Rubric,
    role: str,
    library: ScenarioLibrary,
) -> dict[str, Any]:
    """The draft scenario as YAML-ready data."""
    customer = [_clean(t.text) for t in turns if t.speaker == Speaker.customer]
    customer = [c for c in customer if len(c.split()) >= _MIN_WORDS] or customer
    if not customer:
        raise DraftError(
            f"Interaction {interaction.id} has no customer turns to draft the persona from"
        )
    persona = _choose_persona(library, role, criterion.id)
    moment = _rep_moment(score, criterion, turns)
    poor_examples = [{"text": _clean(moment)}] if moment else []
    poor_examples += [{"text": e} for e in criterion.levels[1].examples[:2]]
    if not poor_examples:
        poor_examples = [{"text": e} for c in criterion.levels[1].checks for e in c.exemplars[:2]]
    top = criterion.levels[3]
    good_examples = [{"text": " ".join(e.split())} for e in top.examples[:2]]
    good_examples += [{"text": e} for c in top.checks for e in c.exemplars[:1]]
    rep_checks = [
        c.id for lvl in (2, 3) for c in criterion.levels[lvl].checks if c.speaker != "customer"
    ]
    success = [c.id for c in top.checks if c.speaker != "customer"] or rep_checks[:1]
    if not success:
        raise DraftError(f"Criterion `{criterion.id}` has no checks the rep can show")

    opening, rest = customer[0], customer[1:]
    early, late = rest[: max(1, len(rest) // 2)], rest[max(1, len(rest) // 2) :]
    day = interaction.started_at.date().isoformat()
    slug = f"draft-{criterion.id.replace('_', '-')}-{interaction.id}"
    return {
        "slug": slug,
        "title": f"{criterion.name} (from a {interaction.channel} call on {day})",
        "role": role,
        "difficulty": "medium",
        "persona": persona.slug,
        "briefing": (
            f"Drafted from a real {interaction.channel} call on {day} where `{criterion.id}` "
            f"scored {score.level}. The customer's words below are from that call. Aim: "
            f"{criterion.behaviour.strip()}"
        ),
        "situation": " ".join(customer[:3]),
        "opening_line": opening,
        "criteria": [{"id": criterion.id, "focus": criterion.behaviour.strip()}],
        "anchors": {
            criterion.id: {
                "good": {"behaviour": top.anchor.strip(), "examples": good_examples[:3]},
                "poor": {
                    "behaviour": criterion.levels[1].anchor.strip(),
                    "examples": poor_examples[:3],
                },
            }
        },
        "stages": [
            {
                "id": "explain",
                "goal": "Explain the problem in your own words, as on the real call.",
                "advance_when": rep_checks + [f"{criterion.id}.good", f"{criterion.id}.poor"],
                "lines": {"calm": early or [opening], "frustrated": early or [opening]},
            },
            {
                "id": "resolve",
                "goal": "Get a clear answer and know what happens next.",
                "lines": {"calm": late or early or [opening], "frustrated": late or [opening]},
            },
        ],
        "success": {"description": top.anchor.strip(), "all_of": success},
        "closing": _closing(persona.kind),
        "time_box_minutes": 10,
        "turn_limit": 14,
    }


def draft_from_interaction(
    engine: Engine,
    interaction_id: int,
    rubrics: RubricLibrary,
    library: ScenarioLibrary,
    *,
    criterion_id: str | None = None,
) -> Draft:
    """Draft a scenario from a stored, scored interaction.

    Raises:
        DraftError: No such interaction, no scores, nothing low enough, or no customer turns.
    """
    with Session(engine) as session:
        interaction = session.get(Interaction, interaction_id)
        if interaction is None:
            raise DraftError(f"No interaction {interaction_id}; check the id")
        turns = list(
            session.exec(
                select(Turn).where(Turn.interaction_id == interaction_id).order_by(col(Turn.idx))
            ).all()
        )
        evaluation = session.exec(
            select(Evaluation)
            .where(Evaluation.interaction_id == interaction_id, Evaluation.status == "scored")
            .order_by(col(Evaluation.created_at).desc(), col(Evaluation.id).desc())
        ).first()
        if evaluation is None or evaluation.id is None:
            raise DraftError(
                f"Interaction {interaction_id} has no scores yet; score it first (`coachloop score`)"
            )
        scores = list(session.exec(select(Score).where(Score.evaluation_id == evaluation.id)).all())
        version = session.get(RubricVersion, evaluation.rubric_version)
        rep = session.get(Person, interaction.rep_id)
    role = version.role if version is not None else (rep.role if rep else None)
    if role is None:
        raise DraftError(f"Cannot tell which rubric scored interaction {interaction_id}")
    try:
        rubric = rubrics.for_role(role)
    except RubricError as exc:
        raise DraftError(str(exc)) from None
    if version is not None and version.version != rubric.version:
        rubric = Rubric.model_validate(version.content)
    score, criterion = _lowest(scores, rubric, criterion_id)
    data = build_draft(interaction, turns, score, criterion, rubric, role, library)
    # the draft must load as a scenario; a failure here is a bug in the drafting, not the call
    parse_scenario(
        data,
        source=Path(f"{data['slug']}.yaml"),
        company=library.company,
        personas=library.personas,
    )
    header = (
        f"# Draft scenario from interaction {interaction_id}: `{criterion.id}` scored "
        f"{score.level}.\n# Review every line before use: check the persona, write lines for "
        "each emotional state,\n# and add held-back facts the rep should earn. Then run "
        "`coachloop scenario lint`.\n"
    )
    text = header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    return Draft(
        slug=data["slug"], criterion_id=criterion.id, level=score.level or 0, yaml_text=text
    )
