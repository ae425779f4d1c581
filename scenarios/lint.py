"""Scenario lint: catch scenarios that cannot be scored, cannot be run, or do not sound like us.

Errors block a scenario from being assigned:

- a criterion that is not in the rubric for the scenario's role;
- an anchor behaviour written as a trait or as something no transcript can show (the same
  patterns the rubric lint uses);
- a signal (stage change, success, held-back release) that nothing in the rubric or the
  scenario's anchors can ever observe, and held-back facts that can never be earned.

Warnings are advice: stages missing lines for an emotional state, generic words where the
company has its own, a persona of the wrong kind for the role, and criteria of the shipped
rubrics that the library covers at fewer than two difficulties.
"""

from __future__ import annotations

from config.rubric import Rubric, RubricError, RubricLibrary
from config.rubric_lint import Finding, Severity, traits_in, unverifiable_in
from personas import DIFFICULTIES, EMOTIONS
from scenarios.library import ScenarioLibrary
from scenarios.schema import Scenario

_OBSERVABLE_EXAMPLE = (
    "say what the rep says or does that a reviewer can point to, e.g. 'restates that the "
    "broadband has dropped every evening before running the line test'"
)


def observable_signals(scenario: Scenario, rubric: Rubric) -> set[str]:
    """Signals the roleplay can observe in this scenario: rep-side checks and anchors."""
    checks = {
        check.id
        for criterion in rubric.criteria_for(scenario.role)
        for check in criterion.checks
        if check.speaker != "customer"
    }
    return checks | scenario.anchor_signals()


def _level_one_checks(rubric: Rubric) -> set[str]:
    return {check.id for c in rubric.criteria for check in c.levels[1].checks}


def _lint_anchor_text(text: str, where: str) -> list[Finding]:
    findings: list[Finding] = []
    traits = traits_in(text)
    if traits:
        findings.append(
            Finding(
                Severity.error,
                where,
                f"describes a trait ({', '.join(traits)}), not an observable response: {text!r}",
                _OBSERVABLE_EXAMPLE,
            )
        )
    unverifiable = unverifiable_in(text)
    if unverifiable:
        findings.append(
            Finding(
                Severity.error,
                where,
                f"describes {unverifiable[0]}, which no reviewer can verify from a "
                f"transcript: {text!r}",
                _OBSERVABLE_EXAMPLE,
            )
        )
    return findings


def _scripted_texts(scenario: Scenario, library: ScenarioLibrary) -> list[tuple[str, str]]:
    texts = [("opening_line", scenario.opening_line)]
    for i, stage in enumerate(scenario.stages):
        for emotion, lines in stage.lines.items():
            texts.extend((f"stages.{i}.lines.{emotion}.{j}", line) for j, line in enumerate(lines))
    for outcome in ("resolved", "unresolved", "walked_out"):
        lines = getattr(scenario.closing, outcome)
        texts.extend((f"closing.{outcome}.{j}", line) for j, line in enumerate(lines))
    for cid, anchor in scenario.anchors.items():
        for side in ("good", "poor"):
            spec = anchor.good if side == "good" else anchor.poor
            for j, example in enumerate(spec.examples):
                if example.reaction:
                    texts.append((f"anchors.{cid}.{side}.examples.{j}.reaction", example.reaction))
    for i, item in enumerate(scenario.held_back):
        texts.append((f"held_back.{i}.line", item.line))
    return texts


def lint_scenario(
    scenario: Scenario, library: ScenarioLibrary, rubrics: RubricLibrary
) -> list[Finding]:
    """Findings for one scenario; `where` is a field path inside the scenario file."""
    findings: list[Finding] = []
    try:
        rubric = rubrics.for_role(scenario.role)
    except RubricError as exc:
        return [
            Finding(
                Severity.error,
                "role",
                str(exc),
                "use a role that has a rubric, or add a rubric for this role",
            )
        ]

    known_criteria = {c.id for c in rubric.criteria_for(scenario.role)}
    for i, target in enumerate(scenario.criteria):
        if target.id not in known_criteria:
            findings.append(
                Finding(
                    Severity.error,
                    f"criteria.{i}.id",
                    f"`{target.id}` is not a criterion of the `{rubric.role}` rubric",
                    f"use one of: {', '.join(sorted(known_criteria))}",
                )
            )

    for cid, anchor in scenario.anchors.items():
        for side in ("good", "poor"):
            spec = anchor.good if side == "good" else anchor.poor
            findings.extend(_lint_anchor_text(spec.behaviour, f"anchors.{cid}.{side}.behaviour"))

    signals = observable_signals(scenario, rubric)
    for where, signal in scenario.signals_used():
        if signal not in signals:
            findings.append(
                Finding(
                    Severity.error,
                    where,
                    f"`{signal}` is neither a check of the `{rubric.role}` rubric the rep can "
                    "show nor an anchor of this scenario, so it is never observed",
                    "use a rubric check id (see `coachloop rubric show ROLE`) or "
                    "`CRITERION.good` / `CRITERION.poor` for an anchor of this scenario",
                )
            )
    persona = library.persona_for(scenario)
    for i, item in enumerate(persona.held_back):
        if not any(s in signals for s in item.earned_by):
            findings.append(
                Finding(
                    Severity.warning,
                    f"persona `{persona.slug}`: held_back.{i}.earned_by",
                    f"none of {item.earned_by} can be observed in this scenario, so "
                    f"`{item.id}` is never told here",
                    "add a signal this scenario can observe to the persona's `earned_by`, "
                    "if the fact matters in this scenario",
                )
            )

    poor_checks = _level_one_checks(rubric)
    for signal in scenario.success.all_of:
        if signal in poor_checks or signal.endswith(".poor"):
            findings.append(
                Finding(
                    Severity.warning,
                    "success.all_of",
                    f"`{signal}` describes poor practice, so success rewards it",
                    "make success depend on the behaviour the scenario trains",
                )
            )

    top_checks = {check.id for c in rubric.criteria for check in c.levels[3].checks}
    for cid, anchor in scenario.anchors.items():
        for side, wrong in (("good", poor_checks), ("poor", top_checks)):
            spec = anchor.good if side == "good" else anchor.poor
            for j, example in enumerate(spec.examples):
                clash = sorted(set(example.shows) & wrong)
                if clash:
                    findings.append(
                        Finding(
                            Severity.warning,
                            f"anchors.{cid}.{side}.examples.{j}.shows",
                            f"a {side} example shows {clash}, which belong to the other end "
                            "of the rubric",
                            "list the checks this line demonstrates",
                        )
                    )

    last = len(scenario.stages) - 1
    for i, stage in enumerate(scenario.stages):
        if i < last and not stage.advance_when:
            findings.append(
                Finding(
                    Severity.warning,
                    f"stages.{i}.advance_when",
                    f"stage `{stage.id}` has no signals, so the conversation never moves past it",
                    "list the checks or anchors that show the rep has dealt with this stage",
                )
            )
        if i == last and stage.advance_when:
            findings.append(
                Finding(
                    Severity.warning,
                    f"stages.{i}.advance_when",
                    f"`{stage.id}` is the last stage; its signals have no effect",
                    "remove them, or add the stage that follows",
                )
            )
        missing = [e for e in EMOTIONS if not stage.lines.get(e)]
        if missing:
            findings.append(
                Finding(
                    Severity.warning,
                    f"stages.{i}.lines",
                    f"stage `{stage.id}` has no lines for {', '.join(missing)}; the nearest "
                    "state's lines are used",
                    "write a line for each emotional state so the persona's mood shows",
                )
            )

    expected_kind = "advisor" if scenario.role == "team-lead" else "customer"
    if persona.kind != expected_kind:
        findings.append(
            Finding(
                Severity.warning,
                "persona",
                f"`{persona.slug}` is a {persona.kind}, but a `{scenario.role}` rep talks to "
                f"{'an advisor' if expected_kind == 'advisor' else 'a customer'}",
                f"choose a persona of kind `{expected_kind}`",
            )
        )

    company = library.company
    for where, text in _scripted_texts(scenario, library):
        for generic, preferred in company.avoided_terms(text):
            findings.append(
                Finding(
                    Severity.warning,
                    where,
                    f"uses `{generic}`, where {company.short_name} says `{preferred}`",
                    f"write it in {company.short_name}'s own words",
                )
            )
    return findings


def lint_coverage(library: ScenarioLibrary, rubrics: RubricLibrary) -> list[Finding]:
    """Criteria of the rubrics that no scenario targets at two or more difficulties."""
    findings: list[Finding] = []
    covered = library.coverage()
    for rubric in rubrics.rubrics:
        for role in rubric.served_roles:
            for criterion in rubric.criteria_for(role):
                levels = covered.get((role, criterion.id), set())
                if len(levels) >= 2:
                    continue
                have = ", ".join(d for d in DIFFICULTIES if d in levels) or "no"
                findings.append(
                    Finding(
                        Severity.warning,
                        f"library: {role}.{criterion.id}",
                        f"practised at {have} difficulty only; reps who improve have nowhere "
                        "to go next",
                        "add a scenario for this criterion at another difficulty",
                    )
                )
    return findings


def lint_library(library: ScenarioLibrary, rubrics: RubricLibrary) -> dict[str, list[Finding]]:
    """Findings per scenario file (by slug), plus `library` for coverage."""
    report = {s.slug: lint_scenario(s, library, rubrics) for s in library.all()}
    report["library"] = lint_coverage(library, rubrics)
    return report
