"""The Harbor Broadband demo: deterministic, the right size, planted patterns, idempotent load."""

from __future__ import annotations

import json
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from app import app
from config.rubric import RubricLibrary
from config.settings import IngestSettings
from ingest.demo import (
    DemoData,
    DemoOptions,
    generate_demo,
    resolve_end_date,
    run_demo,
    summarise_org,
    write_demo,
)
from ingest.demo._text import load_template
from ingest.org import import_org
from store.models import Access, Interaction, Person, Team

END = date(2026, 3, 13)
DEFAULT = DemoOptions(end_date=END)
SMALL = DemoOptions(end_date=END, reps=9, days=7, seed=3)
BELOW = 1.8


@pytest.fixture(scope="module")
def demo() -> DemoData:
    return generate_demo(DEFAULT)


def _levels(data: DemoData) -> dict[str, dict[str, list[tuple[datetime, int]]]]:
    """rep -> criterion -> [(started_at, level)] in session order, N/A left out."""
    out: dict[str, dict[str, list[tuple[datetime, int]]]] = defaultdict(lambda: defaultdict(list))
    for call in sorted(data.calls, key=lambda c: c["started_at"]):
        when = datetime.fromisoformat(call["started_at"].replace("Z", "+00:00"))
        for criterion, level in call["meta"]["intended_levels"].items():
            if level is not None:
                out[call["rep"]][criterion].append((when, level))
    return out


def _means(data: DemoData) -> dict[str, dict[str, float]]:
    return {
        rep: {c: statistics.mean(level for _, level in seq) for c, seq in by_criterion.items()}
        for rep, by_criterion in _levels(data).items()
    }


# -- determinism and size -------------------------------------------------------------------


def test_same_seed_gives_the_same_demo(demo: DemoData) -> None:
    again = generate_demo(DEFAULT)
    small = generate_demo(SMALL)
    other_seed = generate_demo(replace(SMALL, seed=SMALL.seed + 1))

    assert again.calls == demo.calls
    assert again.org.as_org_file() == demo.org.as_org_file()
    assert other_seed.calls != small.calls
    assert other_seed.org.as_org_file() != small.org.as_org_file()


def test_organisation_has_three_roles_managers_and_an_admin(demo: DemoData) -> None:
    people = demo.org.people
    reps = [p for p in people if p.access == "rep"]
    roles = {role: sum(p.role == role for p in reps) for role in ("support", "sales", "team-lead")}

    assert len(reps) == 24
    assert roles == {"support": 15, "sales": 6, "team-lead": 3}
    assert [t.slug for t in demo.org.teams] == ["support-north", "support-south", "sales"]
    assert 2 <= sum(p.access == "manager" for p in people) <= 3
    assert sum(p.access == "admin" for p in people) == 1
    assert 0 < sum(p.pilot for p in reps) < len(reps)
    assert len({p.external_id for p in people}) == len(people)
    assert len({p.email for p in people}) == len(people)
    assert all(re.fullmatch(r"U0[A-Z0-9]{9}", p.slack_user_id) for p in people)
    assert all(p.email.endswith("@harbor.example") for p in people)
    assert all(p.team and p.manager for p in reps)


def test_calls_cover_thirty_working_days_in_the_ingest_format(demo: DemoData) -> None:
    rubrics = RubricLibrary.from_dir()
    start = END - timedelta(days=29)
    team_of = {p.external_id: p.team for p in demo.org.reps}

    assert 1000 <= len(demo.calls) <= 1500
    assert len({c["external_id"] for c in demo.calls}) == len(demo.calls)
    texts = {tuple((t["speaker"], t["text"]) for t in c["turns"]) for c in demo.calls}
    assert len(texts) == len(demo.calls)
    for call in demo.calls:
        assert set(call) == {
            "external_id", "rep", "team", "channel", "started_at", "duration_s", "turns", "meta",
        }  # fmt: skip
        when = datetime.fromisoformat(call["started_at"].replace("Z", "+00:00"))
        assert call["started_at"].endswith("Z") and when.tzinfo == UTC
        assert start <= when.date() <= END and when.weekday() < 5
        assert call["team"] == team_of[call["rep"]]
        assert call["channel"] in {"phone", "chat", "video"}
        turns = call["turns"]
        assert 12 <= len(turns) <= 40
        assert {t["speaker"] for t in turns} == {"agent", "customer"}
        assert all(t["text"] and "{" not in t["text"] and "[[" not in t["text"] for t in turns)
        starts = [t["start_s"] for t in turns]
        assert starts == sorted(starts) and all(t["end_s"] > t["start_s"] for t in turns)
        assert call["duration_s"] >= turns[-1]["end_s"]
        rubric = rubrics.for_role(call["meta"]["role"])
        assert call["meta"]["rubric_version"] == rubric.version
        assert list(call["meta"]["intended_levels"]) == [c.id for c in rubric.criteria]


def test_every_criterion_of_every_role_is_shown_at_every_level(demo: DemoData) -> None:
    rubrics = RubricLibrary.from_dir()
    seen: dict[tuple[str, str], set[int | None]] = defaultdict(set)
    for call in demo.calls:
        for criterion, level in call["meta"]["intended_levels"].items():
            seen[(call["meta"]["role"], criterion)].add(level)

    for role in ("support", "sales", "team-lead"):
        for criterion in rubrics.for_role(role).criteria:
            assert {1, 2, 3} <= seen[(role, criterion.id)], (role, criterion.id)
            # N/A exactly where the rubric allows it
            assert (None in seen[(role, criterion.id)]) == (criterion.applies_when is not None)


# -- planted patterns -----------------------------------------------------------------------


@pytest.mark.parametrize("options", [DEFAULT, DemoOptions(end_date=END, reps=12, seed=99)])
def test_ground_truth_holds_the_coaching_patterns(demo: DemoData, options: DemoOptions) -> None:
    data = demo if options == DEFAULT else generate_demo(options)
    means = _means(data)
    levels = _levels(data)
    last_week = options.end_date - timedelta(days=6)

    # individual gaps: a rep averaging below 1.8 on a criterion
    gaps = [p for p in data.org.patterns if p.kind == "gap"]
    assert gaps
    assert all(means[p.rep][p.criterion or ""] < BELOW for p in gaps)

    # a criterion falling across three consecutive sessions in the last week
    def falls(seq: list[int]) -> bool:
        return any(a > b > c for a, b, c in zip(seq, seq[1:], seq[2:], strict=False))

    declines = [p for p in data.org.patterns if p.kind == "decline"]
    assert declines
    for p in declines:
        recent = [lvl for when, lvl in levels[p.rep][p.criterion or ""] if when.date() >= last_week]
        assert falls(recent), (p.rep, recent)

    # a cohort: at least 40% of one team share the same gap
    cohort_teams = set()
    for team in data.org.teams:
        members = data.org.team_members(team.slug)
        for criterion in {c for m in members for c in means[m.external_id]}:
            below = [m for m in members if means[m.external_id].get(criterion, 3) < BELOW]
            if len(below) / len(members) >= 0.4:
                cohort_teams.add((team.slug, criterion))
    assert ("support-south", "confirm_resolution") in cohort_teams

    # improvers end much higher than they start; strong reps are strong on everything
    for p in (p for p in data.org.patterns if p.kind == "improver"):
        seq = levels[p.rep][p.criterion or ""]
        first = [lvl for when, lvl in seq if when.date() < options.start_date + timedelta(days=7)]
        last = [lvl for when, lvl in seq if when.date() >= last_week]
        assert statistics.mean(last) - statistics.mean(first) >= 0.5, p.rep
    strong = [p for p in data.org.patterns if p.kind == "strong"]
    assert strong
    assert all(min(means[p.rep].values()) >= 2.4 for p in strong)


# -- the words match the intended levels ----------------------------------------------------


def _pattern(line: str) -> re.Pattern[str]:
    """A template line as a regular expression: slots match anything, choices any option."""
    out: list[str] = []
    for part in re.split(r"(\{[a-z_]+\}|\[\[[^\]]*\]\])", line.rstrip(".")):
        if part.startswith("{"):
            out.append(".+?")
        elif part.startswith("[["):
            out.append("(?:" + "|".join(re.escape(o) for o in part[2:-2].split("|")) + ")")
        else:
            out.append(re.escape(part))
    return re.compile(re.sub(r"(\\ )+", r"\\s*", "".join(out)), re.IGNORECASE)


def _agent_lines(node: Any) -> list[str]:
    """Every advisor line under a template node with enough fixed words to recognise it."""
    if isinstance(node, str):
        fixed = re.sub(r"\{[a-z_]+\}|\[\[[^\]]*\]\]", "", node[2:])
        return [node[2:].strip()] if node.startswith("A:") and len(fixed.strip()) >= 15 else []
    if isinstance(node, list):
        return [line for item in node for line in _agent_lines(item)]
    if isinstance(node, dict):
        return [line for item in node.values() for line in _agent_lines(item)]
    return []


def _any(lines: Iterable[str], text: str) -> bool:
    return any(_pattern(line).search(text) for line in lines)


Markers = dict[tuple[str, tuple[int | None, ...]], list[str]]
"""(criterion, intended levels) -> advisor lines that appear exactly at those levels."""


def _sales_markers() -> Markers:
    t = load_template("sales")
    needs = t["needs"].values()
    objections = t["objections"].values()
    return {
        ("discover_needs", (1,)): _agent_lines(t["pitch_intro"]),
        ("discover_needs", (2,)): _agent_lines([n["closed"] for n in needs]),
        ("discover_needs", (3,)): _agent_lines([[n["open"], n["summary"]] for n in needs]),
        ("link_offer_to_need", (1,)): _agent_lines(t["offer"][1]),
        ("link_offer_to_need", (2,)): _agent_lines(t["offer"][2]),
        ("link_offer_to_need", (3,)): _agent_lines([n["link"] for n in needs]),
        ("handle_objection", (1,)): _agent_lines([o[1] for o in objections]),
        ("handle_objection", (2,)): _agent_lines([o[2] for o in objections]),
        ("handle_objection", (3,)): _agent_lines([o[3] for o in objections]),
        ("state_terms", (1,)): _agent_lines(t["terms"][1]),
        ("state_terms", (2,)): _agent_lines(t["terms"][2]),
        ("state_terms", (3,)): _agent_lines(t["terms"][3]),
    }


def _support_markers() -> Markers:
    t = load_template("support")
    variants = [v for s in t["scenarios"].values() for v in s["variants"]]
    return {
        ("verify_identity", (1,)): _agent_lines(t["verify"][1]),
        ("verify_identity", (2,)): _agent_lines(t["verify"][2]),
        ("verify_identity", (3,)): _agent_lines([t["verify"][3], t["recording_notice"]]),
        ("acknowledge_concern", (None,)): _agent_lines(t["acknowledge"]["none"]),
        ("acknowledge_concern", (1,)): _agent_lines(t["acknowledge"][1]),
        ("acknowledge_concern", (2,)): _agent_lines(t["acknowledge"][2]),
        ("acknowledge_concern", (3,)): _agent_lines([v.get("acknowledge", []) for v in variants]),
        ("follow_process", (1,)): _agent_lines([v["fix_direct"] for v in variants]),
        ("follow_process", (2, 3)): _agent_lines([v["check"] for v in variants]),
        ("follow_process", (3,)): _agent_lines(t["reference"]),
        ("confirm_resolution", (1,)): _agent_lines(t["resolution"][1]),
        ("confirm_resolution", (2,)): _agent_lines([v["next_step"] for v in variants]),
        ("confirm_resolution", (3,)): _agent_lines(
            [t["resolution"]["resolved_check"], [v["timeframe"] for v in variants]]
        ),
    }


def _team_lead_markers() -> Markers:
    t = load_template("team-lead")
    topics = t["topics"].values()
    return {
        ("asks_view_first", (2,)): _agent_lines(t["ask_after"]),
        ("asks_view_first", (3,)): _agent_lines(t["ask_first"]),
        ("agrees_next_step", (1,)): _agent_lines(t["next_step"][1]),
        ("agrees_next_step", (2,)): _agent_lines(t["next_step"][2]),
        ("agrees_next_step", (3,)): _agent_lines(t["next_step"][3]),
        ("cites_moment", (1,)): list(t["cite"][1]),
        ("cites_moment", (3,)): list(t["cite"][3]),
        ("names_behaviour", (1,)): [f for topic in topics for f in topic["trait"]],
        ("names_behaviour", (2, 3)): [f for topic in topics for f in topic["action"]],
        ("names_behaviour", (3,)): [f for topic in topics for f in topic["effect"]],
    }


@pytest.mark.parametrize("role", ["support", "sales", "team-lead"])
def test_each_call_says_exactly_what_its_levels_need(demo: DemoData, role: str) -> None:
    """A level's own lines appear in the call, and no other level's lines do."""
    markers = {
        "support": _support_markers,
        "sales": _sales_markers,
        "team-lead": _team_lead_markers,
    }[role]()
    patterns = {key: [_pattern(line) for line in lines] for key, lines in markers.items()}
    calls = [c for c in demo.calls if c["meta"]["role"] == role]
    assert calls
    for call in calls:
        agent = "\n".join(t["text"] for t in call["turns"] if t["speaker"] == "agent")
        for (criterion, levels), compiled in patterns.items():
            intended = call["meta"]["intended_levels"][criterion]
            found = any(p.search(agent) for p in compiled)
            assert found == (intended in levels), (call["external_id"], criterion, intended)


def test_objections_and_concerns_appear_only_where_the_criterion_applies(demo: DemoData) -> None:
    sales = load_template("sales")
    objections = [line[2:].strip() for o in sales["objections"].values() for line in o["customer"]]
    for call in demo.calls:
        levels = call["meta"]["intended_levels"]
        customer = "\n".join(t["text"] for t in call["turns"] if t["speaker"] == "customer")
        if call["meta"]["role"] == "sales":
            assert _any(objections, customer) == (levels["handle_objection"] is not None)
            assert (call["meta"]["objection"] is None) == (levels["handle_objection"] is None)


# -- files, loading and idempotence ---------------------------------------------------------


def test_written_files_follow_the_import_formats(demo: DemoData, tmp_path: Path) -> None:
    files = write_demo(demo, tmp_path)

    org = yaml.safe_load(files.org.read_text(encoding="utf-8"))
    assert set(org) == {"teams", "people"}
    assert {t["slug"] for t in org["teams"]} == {"support-north", "support-south", "sales"}
    assert all(t["managers"] for t in org["teams"])
    rep = next(p for p in org["people"] if p["access"] == "rep")
    assert set(rep) == {
        "external_id", "name", "email", "slack_user_id", "access", "role", "team", "manager",
        "pilot",
    }  # fmt: skip
    assert len(files.calls) == len(demo.calls_by_day())
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}\.jsonl", p.name) for p in files.calls)
    first = json.loads(files.calls[0].read_text(encoding="utf-8").splitlines()[0])
    assert first == demo.calls_by_day()[min(demo.calls_by_day())][0]
    manifest = json.loads(files.manifest.read_text(encoding="utf-8"))
    assert manifest["end_date"] == END.isoformat() and manifest["calls"] == len(demo.calls)


def test_org_file_imports_cleanly(demo: DemoData, sqlite_engine: Engine, tmp_path: Path) -> None:
    files = write_demo(demo, tmp_path)

    report = import_org(sqlite_engine, files.org)
    again = import_org(sqlite_engine, files.org)

    assert report.errors == [] and report.created["person"] == len(demo.org.people)
    assert report.created["team"] == 3
    assert not again.changed


def test_rewriting_a_smaller_demo_drops_stale_day_files(tmp_path: Path) -> None:
    write_demo(generate_demo(DemoOptions(end_date=END, reps=9, days=14)), tmp_path)
    files = write_demo(generate_demo(SMALL), tmp_path)

    on_disk = sorted((tmp_path / "demo" / "calls").glob("*.jsonl"))
    assert on_disk == sorted(files.calls)
    assert len(on_disk) == 5


def test_end_date_defaults_to_the_existing_demo_then_today(tmp_path: Path) -> None:
    today = date(2026, 4, 1)
    assert resolve_end_date(tmp_path, None, today=today) == today

    write_demo(generate_demo(SMALL), tmp_path)

    assert resolve_end_date(tmp_path, None, today=today) == END
    assert resolve_end_date(tmp_path, date(2026, 2, 2), today=today) == date(2026, 2, 2)


def test_loading_twice_stores_nothing_new(db_engine: Engine, tmp_path: Path) -> None:
    settings = IngestSettings()

    first = run_demo(db_engine, SMALL, settings=settings, data_dir=tmp_path)
    second = run_demo(db_engine, SMALL, settings=settings, data_dir=tmp_path)

    assert first.ingest.new == first.generated > 0 and first.ingest.rejected == 0
    assert second.ingest.new == 0 and second.ingest.duplicate == first.generated
    assert not second.org.changed
    with Session(db_engine) as session:
        stored = session.exec(select(func.count()).select_from(Interaction)).one()
        sources = set(session.exec(select(Interaction.source)).all())
        people = session.exec(select(Person)).all()
        teams = session.exec(select(Team)).all()
        meta = session.exec(select(Interaction.meta)).first()
    assert stored == first.generated
    assert sources == {"demo"}
    assert sum(p.access == Access.rep for p in people) == SMALL.reps
    assert len(teams) == 3
    assert meta is not None and set(meta["intended_levels"]) and meta["demo"] is True


def test_summary_counts_what_the_database_holds(sqlite_engine: Engine, tmp_path: Path) -> None:
    report = run_demo(sqlite_engine, SMALL, settings=IngestSettings(), data_dir=tmp_path)

    summary = summarise_org(sqlite_engine)

    assert summary.calls == report.generated == sum(t.calls for t in summary.teams)
    assert summary.reps_by_role == {"sales": 2, "support": 4, "team-lead": 3}
    assert summary.first_call is not None and summary.first_call.date() >= SMALL.start_date
    assert summary.last_call is not None and summary.last_call.date() <= END
    assert [name for name, _, _ in summary.managers] == [
        "Ana Ortiz",
        "Declan Murray",
        "Marcus Bell",
    ]
    assert len(summary.admins) == 1


def test_cli_demo_prints_the_organisation_and_reruns_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COACHLOOP_DATA_DIR", str(tmp_path / "data"))
    from config.settings import get_settings

    get_settings.cache_clear()
    args = ["demo", "--reps", "9", "--days", "7", "--seed", "3", "--end-date", END.isoformat()]

    first = CliRunner().invoke(app, args)
    second = CliRunner().invoke(app, ["demo", "--reps", "9", "--days", "7", "--seed", "3"])
    bad = CliRunner().invoke(app, ["demo", "--end-date", "13/03/2026"])
    get_settings.cache_clear()

    assert first.exit_code == 0, first.output
    assert "Teams" in first.output and "Reps per role" in first.output
    assert "support-south" in first.output and "Marcus Bell" in first.output
    assert second.exit_code == 0, second.output
    assert " 0 new" in second.output and f"to {END}" in second.output
    assert bad.exit_code != 0 and "YYYY-MM-DD" in bad.output


@pytest.mark.parametrize("role", ["support", "sales", "team-lead"])
def test_templates_word_things_differently_from_the_rubric_exemplars(role: str) -> None:
    def norm(text: str) -> str:
        return re.sub(r"[^a-z0-9 ]+", "", re.sub(r"\s+", " ", text.lower().replace("'", "")))

    template = norm((Path(__file__).parents[2] / f"ingest/demo/templates/{role}.yaml").read_text())
    rubric = RubricLibrary.from_dir().for_role(role)
    checks = [check for c in rubric.criteria for check in c.checks]
    checks += [c.applies_when for c in rubric.criteria if c.applies_when is not None]

    copied = [ex for check in checks for ex in check.exemplars if norm(ex).strip() in template]

    assert copied == []
