"""Generate the Harbor Broadband demo: an organisation and a month of calls in its own words.

Every call is planned first (who, when, which scenario, and the level each rubric criterion is
meant to show), then rendered from the role's template by picking, for each criterion, lines
that meet the checks of that level and miss the ones above it. The plan is kept in the call's
`meta.intended_levels`, so a scorer can be measured against it.

Everything follows from the seed: the same options give the same organisation, the same calls
and the same external ids.
"""

from __future__ import annotations

import logging
import math
import random
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from config.rubric import RubricLibrary
from ingest.demo._text import (
    Exchange,
    Line,
    TemplateError,
    load_template,
    merge_turns,
    node,
    pool,
    render,
    strings,
)
from ingest.demo.org import (
    DECLINE_SCRIPT,
    TEAM_LEAD_ROLE,
    DemoOrg,
    DemoPerson,
    SkillProfile,
    build_org,
)

logger = logging.getLogger(__name__)

ROLES = ("support", "sales", TEAM_LEAD_ROLE)
RENDERED_CRITERIA: dict[str, frozenset[str]] = {
    "support": frozenset(
        {"verify_identity", "acknowledge_concern", "confirm_resolution", "follow_process"}
    ),
    "sales": frozenset({"discover_needs", "link_offer_to_need", "handle_objection", "state_terms"}),
    TEAM_LEAD_ROLE: frozenset(
        {"names_behaviour", "cites_moment", "asks_view_first", "agrees_next_step"}
    ),
}
"""The criteria each role's template knows how to render; must match the shipped rubrics."""

MIN_TURNS, MAX_TURNS, TYPICAL_TURNS = 12, 40, 20
MAX_FILLERS = 4
LAST_WEEK_DAYS = 7
LEVEL_NOISE = 0.45
CALLS_PER_DAY = {1: 0.25, 2: 0.5, 3: 0.25}
WORKING_HOURS = {"support": (8.0, 19.5), "sales": (9.0, 18.5), TEAM_LEAD_ROLE: (9.5, 16.5)}
MOODS = {"calm": 0.45, "frustrated": 0.25, "chatty": 0.15, "brief": 0.15}
SOURCE_PREFIX = "demo"

_MONTHS = (
    "January February March April May June July August September October November December"
).split()
_WEEKDAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
_NUMBER_WORDS = "two three four five six seven eight nine".split()
_POSTCODE_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
_HOLD_CUES = ("bear with me", "one moment", "one second", "won't be a moment", "test on your line")
_HOLD_CUES_LONG = ("line test", "running a test", "takes about a minute")


@dataclass(frozen=True)
class DemoOptions:
    """What to generate: `days` calendar days ending on `end_date`, working days only."""

    end_date: date
    reps: int = 24
    days: int = 30
    seed: int = 7

    @property
    def start_date(self) -> date:
        return self.end_date - timedelta(days=self.days - 1)


@dataclass
class DemoData:
    options: DemoOptions
    org: DemoOrg
    calls: list[dict[str, Any]]
    """Call objects in the ingest JSONL format, oldest first."""
    rubric_versions: dict[str, str]

    def calls_by_day(self) -> dict[date, list[dict[str, Any]]]:
        days: dict[date, list[dict[str, Any]]] = defaultdict(list)
        for call in self.calls:
            days[date.fromisoformat(call["started_at"][:10])].append(call)
        return dict(sorted(days.items()))

    def manifest(self) -> dict[str, Any]:
        """What was generated and the shapes planted on purpose, for tests and scorers."""
        return {
            "company": self.org.company,
            "seed": self.options.seed,
            "reps": self.options.reps,
            "days": self.options.days,
            "start_date": self.options.start_date.isoformat(),
            "end_date": self.options.end_date.isoformat(),
            "calls": len(self.calls),
            "rubric_versions": self.rubric_versions,
            "patterns": [
                {
                    "rep": p.rep,
                    "team": p.team,
                    "role": p.role,
                    "criterion": p.criterion,
                    "kind": p.kind,
                }
                for p in self.org.patterns
            ],
        }


@dataclass
class _Plan:
    """One call before it is rendered."""

    rep: DemoPerson
    started_at: datetime
    index: int
    """The rep's call number on that day, from 1."""
    scenario: str
    levels: dict[str, int | None]
    variant: int = 0
    need: str = ""
    objection: str | None = None
    employee: DemoPerson | None = None
    mood: str = "calm"

    @property
    def external_id(self) -> str:
        return f"{SOURCE_PREFIX}-{self.started_at:%Y%m%d}-{self.rep.external_id}-{self.index}"


@dataclass
class _Flow:
    """The lines of a call in order, with places where neutral talk may be added."""

    facts: dict[str, str]
    rng: random.Random
    where: str
    items: list[Exchange | None] = field(default_factory=list)

    def pick(self, variants: Sequence[Exchange]) -> None:
        self.items.append(render(self.rng.choice(variants), self.facts, self.rng, where=self.where))

    def say(self, speaker: str, text: str) -> None:
        self.items.append(render([(speaker, text)], self.facts, self.rng, where=self.where))

    def pad_point(self) -> None:
        self.items.append(None)

    def lines(self, pads: list[Exchange], target: int, reserve: list[Exchange]) -> list[Line]:
        """Add padding at the pad points until the call has about `target` turns.

        `reserve` is only drawn on when the pads run out before the call reaches the minimum.
        """
        points = [i for i, item in enumerate(self.items) if item is None]
        extra: dict[int, list[Exchange]] = defaultdict(list)
        candidates = list(pads)
        self.rng.shuffle(candidates)
        spare = [e for e in reserve if e not in pads]
        self.rng.shuffle(spare)

        def flatten() -> list[Line]:
            out: list[Line] = []
            for i, item in enumerate(self.items):
                if item is None:
                    for exchange in extra[i]:
                        out.extend(exchange)
                else:
                    out.extend(item)
            return out

        def count(lines: list[Line]) -> int:
            """Turns once consecutive lines of one speaker are joined."""
            return sum(1 for i, line in enumerate(lines) if i == 0 or line[0] != lines[i - 1][0])

        turns = count(flatten())
        while points and turns < target:
            if not candidates and turns < MIN_TURNS:
                candidates, spare = spare, []
            if not candidates:
                break
            pad = render(candidates.pop(), self.facts, self.rng, where=f"{self.where} filler")
            extra[self.rng.choice(points)].append(pad)
            turns = count(flatten())
        return merge_turns(flatten())[:MAX_TURNS]


def _weighted(rng: random.Random, weights: Mapping[str, float]) -> str:
    names = list(weights)
    return rng.choices(names, weights=[float(weights[n]) for n in names])[0]


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _working_days(start: date, end: date) -> list[date]:
    days = (end - start).days + 1
    return [
        start + timedelta(days=i) for i in range(days) if (start + timedelta(days=i)).weekday() < 5
    ]


def _working_day_after(day: date, steps: int) -> date:
    current = day
    while steps > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            steps -= 1
    return current


def _working_day_before(day: date, steps: int) -> date:
    current = day
    while steps > 0:
        current -= timedelta(days=1)
        if current.weekday() < 5:
            steps -= 1
    return current


def _part_of_day(hour: int) -> str:
    return "morning" if hour < 12 else "afternoon" if hour < 17 else "evening"


_PRONOUNS = {"f": {"she", "her", "hers", "she'd"}, "m": {"he", "him", "his", "he'd"}}


def _fits(text: str, gender: str) -> bool:
    """True when `text` has no pronoun of the other gender."""
    other = _PRONOUNS["m" if gender == "f" else "f"]
    return not any(word.strip(".,;:'!?") in other for word in text.lower().split())


def _sample_level(mean: float, rng: random.Random) -> int:
    return max(1, min(3, math.floor(mean + rng.gauss(0, LEVEL_NOISE) + 0.5)))


class DemoGenerator:
    """Plans and renders the demo; one instance per generation."""

    def __init__(self, options: DemoOptions, rubrics: RubricLibrary) -> None:
        if options.days < LAST_WEEK_DAYS:
            raise ValueError(f"the demo needs at least {LAST_WEEK_DAYS} days, got {options.days}")
        self.options = options
        self.templates = {role: load_template(role) for role in ROLES}
        self.people = load_template("people")
        self.lists = {
            key: strings(self.people, key, where="people")
            for key in (
                "customer_first_names",
                "customer_last_names",
                "towns",
                "streets",
                "schools",
                "competitors",
            )
        }
        self.criteria: dict[str, list[str]] = {}
        self.rubric_versions: dict[str, str] = {}
        for role in ROLES:
            rubric = rubrics.for_role(role)
            ids = [c.id for c in rubric.criteria_for(role)]
            if set(ids) != RENDERED_CRITERIA[role]:
                raise TemplateError(
                    f"the demo renders the {role} criteria {sorted(RENDERED_CRITERIA[role])}, "
                    f"but the {role} rubric has {sorted(ids)}; run the demo with the shipped rubrics"
                )
            self.criteria[role] = ids
            self.rubric_versions[role] = rubric.version
        self.weeks = math.ceil(options.days / 7)

    # -- planning -------------------------------------------------------------------------

    def _schedule(self, rep: DemoPerson, rng: random.Random) -> list[tuple[datetime, int]]:
        assert rep.role is not None
        opens, closes = WORKING_HOURS[rep.role]
        slots: list[tuple[datetime, int]] = []
        for day in _working_days(self.options.start_date, self.options.end_date):
            count = int(_weighted(rng, {str(k): v for k, v in CALLS_PER_DAY.items()}))
            width = (closes - opens) / count
            for i in range(count):
                hour = opens + width * i + rng.uniform(0.05, 0.8) * width
                minutes = int(hour * 60)
                when = datetime.combine(day, time(minutes // 60, minutes % 60, rng.randrange(60)))
                slots.append((when.replace(tzinfo=UTC), i + 1))
        return slots

    def _choose_scenario(self, plan: _Plan, rng: random.Random, org: DemoOrg) -> set[str]:
        """Pick what the call is about; returns the criteria that apply to it."""
        role = plan.rep.role
        template = self.templates[role or ""]
        applicable = set(self.criteria[role or ""])
        if role == "support":
            scenarios = node(template, "scenarios", where=role)
            plan.scenario = _weighted(rng, {k: v["weight"] for k, v in scenarios.items()})
            variants = scenarios[plan.scenario]["variants"]
            plan.variant = rng.randrange(len(variants))
            concern = bool(variants[plan.variant]["concern"])
            plan.mood = (
                _weighted(rng, MOODS) if concern else rng.choice(["calm", "chatty", "brief"])
            )
            if not concern:
                applicable.discard("acknowledge_concern")
        elif role == "sales":
            scenarios = node(template, "scenarios", where=role)
            plan.scenario = _weighted(rng, {k: v["weight"] for k, v in scenarios.items()})
            needs = node(template, "needs", where=role)
            fitting = sorted(k for k, v in needs.items() if plan.scenario in v["scenarios"])
            plan.need = rng.choice(fitting)
            family = template["products"][needs[plan.need]["product"]]["family"]
            plan.mood = rng.choice(["calm", "chatty", "brief"])
            if rng.random() < float(scenarios[plan.scenario]["objection"]):
                kinds = ["price", "contract"]
                if family != "mobile":
                    kinds += ["competitor", "past-problem"]
                if plan.scenario == "retention":
                    kinds = ["price", "price", *kinds]
                plan.objection = rng.choice(kinds)
            else:
                applicable.discard("handle_objection")
        else:
            team = org.team_members(plan.rep.team or "")
            team_role = next(t.role for t in org.teams if t.slug == plan.rep.team)
            topics = node(template, "topics", where=TEAM_LEAD_ROLE)
            plan.scenario = rng.choice(
                sorted(k for k, v in topics.items() if team_role in v["roles"])
            )
            plan.employee = rng.choice([p for p in team if p.role != TEAM_LEAD_ROLE])
        return applicable

    def plan(self, org: DemoOrg) -> list[_Plan]:
        plans: list[_Plan] = []
        start, end = self.options.start_date, self.options.end_date
        span = max(1, (end - start).days)
        last_week_from = end - timedelta(days=LAST_WEEK_DAYS - 1)
        for rep in org.reps:
            assert rep.role is not None
            rng = random.Random(f"{self.options.seed}:plan:{rep.external_id}")
            profile: SkillProfile = org.profiles[rep.external_id]
            rep_plans: list[_Plan] = []
            for when, index in self._schedule(rep, rng):
                plan = _Plan(rep=rep, started_at=when, index=index, scenario="", levels={})
                applicable = self._choose_scenario(plan, rng, org)
                day = when.date()
                week = min(self.weeks - 1, (day - start).days // 7)
                progress = (day - start).days / span
                for criterion in self.criteria[rep.role]:
                    if criterion not in applicable:
                        plan.levels[criterion] = None
                        continue
                    mean = profile.mean_level(criterion, week=week, progress=progress)
                    plan.levels[criterion] = _sample_level(mean, rng)
                rep_plans.append(plan)
            final_week = [p for p in rep_plans if p.started_at.date() >= last_week_from]
            for criterion in profile.declining:
                script = list(DECLINE_SCRIPT[-len(final_week) :]) if final_week else []
                script = [3] * (len(final_week) - len(script)) + script
                for plan, level in zip(final_week, script, strict=True):
                    plan.levels[criterion] = level
            plans.extend(rep_plans)
        plans.sort(key=lambda p: (p.started_at, p.rep.external_id))
        return plans

    # -- rendering ------------------------------------------------------------------------

    def _facts(self, plan: _Plan, rng: random.Random) -> dict[str, str]:
        lists = self.lists
        first = rng.choice(lists["customer_first_names"])
        last = rng.choice(lists["customer_last_names"])
        towns, streets = lists["towns"], lists["streets"]
        day = plan.started_at.date()
        letters = _POSTCODE_LETTERS
        digits = f"{rng.randint(10000, 99999)}"
        birth = date(rng.randint(1948, 2003), rng.randint(1, 12), rng.randint(1, 28))
        visit = _working_day_after(day, rng.randint(1, 6))
        move = day + timedelta(days=rng.randint(9, 30))
        old_price = rng.choice(["27.99", "34.99", "44.99"])
        rise = rng.choice(["£3", "£3", "£4"])
        new_price = f"{float(old_price) + float(rise[1:]):.2f}"
        return {
            "agent": plan.rep.first_name,
            "customer_first": first,
            "title_name": f"{first} {last}",
            "email": f"{first}.{last}{rng.randint(1, 99)}@mailbox.example".lower().replace("'", ""),
            "postcode": (
                f"HB{rng.randint(1, 19)} {rng.randint(1, 9)}"
                f"{rng.choice(letters)}{rng.choice(letters)}"
            ),
            "dob": f"{_ordinal(birth.day)} of {_MONTHS[birth.month - 1]} {birth.year}",
            "account": f"{rng.randint(100, 999)} {rng.randint(100, 999)} {rng.randint(100, 999)}",
            "school": rng.choice(lists["schools"]),
            "ref": f"HB-{digits}",
            "ref_spelled": "H B " + " ".join(digits),
            "house": str(rng.randint(1, 120)),
            "street": rng.choice(streets),
            "town": rng.choice(towns),
            "office_town": str(node(self.people, "office_town", where="people")),
            "new_house": str(rng.randint(1, 80)),
            "new_street": rng.choice(streets),
            "new_town": rng.choice(towns),
            "move_date": _ordinal(move.day),
            "day": _WEEKDAYS[visit.weekday()],
            "slot": rng.choice(["morning slot, 8am to 1pm", "afternoon slot, 1pm to 6pm"]),
            "part_of_day": _part_of_day(plan.started_at.hour),
            "rise": rise,
            "old_price": old_price,
            "new_price": new_price,
            "sign_month": f"{rng.choice(_MONTHS)} {day.year - rng.randint(1, 2)}",
            "sign_year": str(day.year - rng.randint(2, 9)),
            "competitor": rng.choice(lists["competitors"]),
            "weekly": rng.choice(["£1.60", "£1.75", "£2.30", "£1.15"]),
        }

    @staticmethod
    def _all_fillers(template: Mapping[str, Any], channel: str) -> list[Exchange]:
        """The neutral exchanges that suit the channel."""
        role = str(template["role"])
        options = pool(template, "filler", where=role)
        if channel == "phone" and "filler_phone" in template:
            options = options + pool(template, "filler_phone", where=role)
        return options

    def _fillers(
        self, template: Mapping[str, Any], channel: str, rng: random.Random
    ) -> list[Exchange]:
        """A few of them, so small talk never crowds out the call."""
        options = self._all_fillers(template, channel)
        return rng.sample(options, k=min(len(options), rng.randint(1, MAX_FILLERS)))

    def _support(self, plan: _Plan, flow: _Flow, channel: str) -> list[Exchange]:
        t, rng, lv = self.templates["support"], flow.rng, plan.levels
        where = f"support.scenarios.{plan.scenario}.variants.{plan.variant}"
        variant = t["scenarios"][plan.scenario]["variants"][plan.variant]
        for key, options in (variant.get("facts") or {}).items():
            flow.facts[key] = rng.choice(options)

        def v(key: str) -> list[Exchange]:
            return pool(variant, key, where=where)

        flow.pick(pool(t, "opening", channel, where="support"))
        if plan.mood == "frustrated":
            flow.pick(pool(t, "frustrated_openers", where="support"))
        elif plan.mood == "chatty":
            flow.pick(pool(t, "chatty_openers", where="support"))
        flow.pick(v("reason"))
        acknowledge = lv["acknowledge_concern"]
        if acknowledge is None:
            flow.pick(pool(t, "acknowledge", "none", where="support"))
        elif acknowledge == 3:
            flow.pick(v("acknowledge"))
            flow.pick(pool(t, "acknowledged", where="support"))
        else:
            flow.pick(pool(t, "acknowledge", acknowledge, where="support"))
        if lv["verify_identity"] == 3:
            flow.pick(pool(t, "recording_notice", channel, where="support"))
        flow.pick(pool(t, "verify", lv["verify_identity"] or 1, where="support"))
        flow.pad_point()
        if lv["follow_process"] == 1:
            flow.pick(v("fix_direct"))
            flow.pick(pool(t, "noted", where="support"))
        else:
            flow.pick(v("check"))
            flow.pick(v("fix"))
            if lv["follow_process"] == 3:
                flow.pick(pool(t, "reference", where="support"))
            else:
                flow.pick(pool(t, "noted", where="support"))
        flow.pad_point()
        resolution = lv["confirm_resolution"]
        if resolution == 1:
            flow.pick(pool(t, "resolution", 1, where="support"))
        elif resolution == 2:
            flow.pick(v("next_step"))
            flow.pick(pool(t, "noted", where="support"))
        else:
            flow.pick(v("timeframe"))
            flow.pick(pool(t, "resolution", "resolved_check", where="support"))
        flow.pick(pool(t, "closing", channel, where="support"))
        middle = v("middle") if variant.get("middle") else []
        return middle + self._fillers(t, channel, rng)

    def _sales(self, plan: _Plan, flow: _Flow, channel: str) -> list[Exchange]:
        t, rng, lv = self.templates["sales"], flow.rng, plan.levels
        scenario = t["scenarios"][plan.scenario]
        need = t["needs"][plan.need]
        where = f"sales.needs.{plan.need}"
        product = t["products"][need["product"]]
        hints = [h for h in need["hint"] if h] if lv["link_offer_to_need"] == 3 else need["hint"]
        flow.facts.update(
            product=product["name"],
            product_short=product["short"],
            price=product["price"],
            term=str(product["term"]),
            rise=product["rise"],
            need_hint=rng.choice(hints),
        )
        flow.pick(pool(t, "opening", channel, where="sales"))
        flow.pick(pool(scenario, "reason", where=f"sales.scenarios.{plan.scenario}"))
        discover = lv["discover_needs"]
        if discover == 1:
            flow.pick(pool(t, "pitch_intro", where="sales"))
        elif discover == 2:
            questions = pool(need, "closed", where=where)
            for exchange in rng.sample(questions, k=rng.randint(1, len(questions))):
                flow.items.append(render(exchange, flow.facts, rng, where=where))
        else:
            questions = pool(need, "open", where=where)
            for exchange in rng.sample(questions, k=rng.randint(2, len(questions))):
                flow.items.append(render(exchange, flow.facts, rng, where=where))
            flow.pick(pool(need, "summary", where=where))
        link = lv["link_offer_to_need"]
        if link == 1:
            flow.pick(pool(t, "offer", 1, product["family"], where="sales"))
        elif link == 2:
            flow.pick(pool(t, "offer", 2, where="sales"))
        else:
            flow.pick(pool(need, "link", where=where))
            flow.pick(pool(t, "offer_fits", where="sales"))
        flow.pad_point()
        if plan.objection is not None:
            objection = t["objections"][plan.objection]
            level = lv["handle_objection"] or 1
            flow.pick(pool(objection, "customer", where=f"sales.objections.{plan.objection}"))
            flow.pick(pool(objection, level, where=f"sales.objections.{plan.objection}"))
            flow.pick(pool(t, "objection_settled", where="sales"))
        flow.pad_point()
        terms = lv["state_terms"] or 1
        flow.pick(pool(t, "terms", terms, where="sales"))
        if terms >= 2:
            flow.pick(pool(t, "agree", where="sales"))
        flow.pick(pool(scenario, "wrap_up", where=f"sales.scenarios.{plan.scenario}"))
        flow.pick(pool(t, "closing", channel, where="sales"))
        middle = pool(scenario, "middle", where=f"sales.scenarios.{plan.scenario}")
        return middle + self._fillers(t, channel, rng)

    def _team_lead(self, plan: _Plan, flow: _Flow) -> list[Exchange]:
        t, rng, lv = self.templates[TEAM_LEAD_ROLE], flow.rng, plan.levels
        topic = t["topics"][plan.scenario]
        where = f"team-lead.topics.{plan.scenario}"
        day = plan.started_at.date()
        review = _working_day_after(day, rng.randint(2, 5))
        minute = rng.randint(2, 9)
        seconds = minute * 60 + rng.randint(-25, 25)
        assert plan.employee is not None
        # the customer in the story is one person: titles and pronouns agree
        gender = rng.choice(["f", "m"])
        title = rng.choice(["Mrs", "Ms"]) if gender == "f" else "Mr"

        def choose(key: str) -> str:
            options = strings(topic, key, where=where)
            return rng.choice([o for o in options if _fits(o, gender)] or options)

        def choose_line(key: str) -> Exchange:
            options = pool(topic, key, where=where)
            fitting = [e for e in options if all(_fits(text, gender) for _, text in e)]
            return render(rng.choice(fitting or options), flow.facts, rng, where=where)

        flow.facts.update(
            employee=plan.employee.first_name,
            cust=f"{title} {flow.facts['title_name'].split()[-1]}",
            weekday=_WEEKDAYS[_working_day_before(day, rng.randint(1, 4)).weekday()],
            day_part=rng.choice(["morning", "afternoon"]),
            minute=_NUMBER_WORDS[minute - 2],
            timestamp=f"{seconds // 60}:{seconds % 60:02d}",
            review_day=_WEEKDAYS[review.weekday()]
            + (" next week" if review.isocalendar()[1] != day.isocalendar()[1] else ""),
            review_time=rng.choice(["at 2", "at 10", "after lunch", "first thing"]),
            call=rng.choice(strings(topic, "call", where=where)),
            quote=rng.choice(strings(topic, "quote", where=where)),
            step=rng.choice(strings(topic, "step", where=where)),
            step_back=rng.choice(strings(topic, "step_back", where=where)),
            review=rng.choice(strings(topic, "review", where=where)),
        )
        asks, cites = lv["asks_view_first"], lv["cites_moment"] or 1
        names = lv["names_behaviour"]
        view = choose_line("view")
        flow.pick(pool(t, "opening", where=TEAM_LEAD_ROLE))
        flow.pad_point()
        if asks == 3:
            about = "about_call" if cites >= 2 else "about_calls"
            flow.pick(pool(t, "ask_first", about, where=TEAM_LEAD_ROLE))
            flow.items.append(view)
            flow.items.append(choose_line("reflect"))
        lead_in = rng.choice(strings(t, "cite", cites, where=TEAM_LEAD_ROLE))
        if names == 1:
            behaviour = choose("trait")
        elif names == 2:
            behaviour = choose("action")
        else:
            behaviour = f"{choose('action').rstrip('.')}, {choose('effect')}"
        if cites == 3:
            behaviour = behaviour[:1].upper() + behaviour[1:]
        flow.say("agent", f"{lead_in} {behaviour}")
        flow.pick(pool(t, "reaction", where=TEAM_LEAD_ROLE))
        flow.pick(pool(topic, "advice", where=where))
        if asks == 2:
            flow.pick(pool(t, "ask_after", where=TEAM_LEAD_ROLE))
            flow.items.append(view)
        flow.pad_point()
        flow.pick(pool(t, "next_step", lv["agrees_next_step"] or 1, where=TEAM_LEAD_ROLE))
        flow.pick(pool(t, "closing", where=TEAM_LEAD_ROLE))
        return self._fillers(t, "video", rng)

    def _turns(self, lines: list[Line], channel: str, rng: random.Random) -> list[dict[str, Any]]:
        """Speaking (or typing) times for each turn."""
        turns: list[dict[str, Any]] = []
        clock = rng.uniform(0.3, 1.5)
        for speaker, text in lines:
            if channel == "chat":
                if speaker == "customer" and rng.random() < 0.35 and not text.startswith("I "):
                    text = text[:1].lower() + text[1:].rstrip(".")
                chars_per_s = 6.0 if speaker == "agent" else 3.5
                length = len(text) / chars_per_s * rng.uniform(0.8, 1.2)
            else:
                words_per_s = 2.8 if speaker == "agent" else 2.5
                length = len(text.split()) / words_per_s * rng.uniform(0.85, 1.15) + 0.3
            start, end = clock, clock + length
            turns.append(
                {
                    "speaker": speaker,
                    "start_s": round(start, 2),
                    "end_s": round(end, 2),
                    "text": text,
                }
            )
            lower = text.lower()
            if speaker == "agent" and any(cue in lower for cue in _HOLD_CUES_LONG):
                gap = rng.uniform(25, 70)
            elif speaker == "agent" and any(cue in lower for cue in _HOLD_CUES):
                gap = rng.uniform(5, 25)
            elif channel == "chat":
                gap = rng.uniform(3, 20)
            else:
                gap = rng.uniform(0.2, 1.2)
            clock = end + gap
        return turns

    def render(self, plan: _Plan, *, attempt: int = 0) -> dict[str, Any]:
        """The call object for `plan`; another `attempt` gives other wording, same levels."""
        rep = plan.rep
        assert rep.role is not None
        rng = random.Random(f"{self.options.seed}:call:{plan.external_id}:{attempt}")
        template = self.templates[rep.role]
        channels = node(template, "channels", where=rep.role)
        channel = _weighted(rng, channels)
        flow = _Flow(facts=self._facts(plan, rng), rng=rng, where=f"{rep.role} {plan.scenario}")
        if rep.role == "support":
            pads = self._support(plan, flow, channel)
        elif rep.role == "sales":
            pads = self._sales(plan, flow, channel)
        else:
            pads = self._team_lead(plan, flow)
        if plan.mood == "brief":
            target = rng.randint(MIN_TURNS, 16)
        else:
            target = round(rng.triangular(MIN_TURNS, MAX_TURNS, TYPICAL_TURNS))
        reserve = self._all_fillers(template, channel)
        turns = self._turns(flow.lines(pads, target, reserve), channel, rng)
        meta: dict[str, Any] = {
            "demo": True,
            "kind": "one-to-one" if rep.role == TEAM_LEAD_ROLE else "call",
            "role": rep.role,
            "scenario": plan.scenario,
            "rubric_version": self.rubric_versions[rep.role],
            "intended_levels": dict(plan.levels),
        }
        if rep.role == "support":
            meta["customer_mood"] = plan.mood
        elif rep.role == "sales":
            meta.update(customer_mood=plan.mood, need=plan.need, objection=plan.objection)
        elif plan.employee is not None:
            meta["employee"] = plan.employee.external_id
        return {
            "external_id": plan.external_id,
            "rep": rep.external_id,
            "team": rep.team,
            "channel": channel,
            "started_at": plan.started_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "duration_s": round(turns[-1]["end_s"] + rng.uniform(0.5, 3.0), 1),
            "turns": turns,
            "meta": meta,
        }


def generate_demo(
    options: DemoOptions,
    *,
    rubrics: RubricLibrary | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> DemoData:
    """Build the organisation and render every call; `on_progress(done, total)` per call.

    `rubrics` defaults to the shipped rubrics, which the templates are written against.
    """
    generator = DemoGenerator(options, rubrics or RubricLibrary.from_dir())
    org = build_org(
        options.reps,
        criteria_by_role=generator.criteria,
        weeks=generator.weeks,
        rng=random.Random(f"{options.seed}:org"),
    )
    plans = generator.plan(org)
    calls: list[dict[str, Any]] = []
    seen: set[tuple[tuple[str, str], ...]] = set()
    for done, plan in enumerate(plans, start=1):
        for attempt in range(10):
            call = generator.render(plan, attempt=attempt)
            content = tuple((t["speaker"], t["text"]) for t in call["turns"])
            if content not in seen:
                break
        # two calls with the same words would be one call to ingestion's duplicate check
        seen.add(content)
        calls.append(call)
        if on_progress is not None:
            on_progress(done, len(plans))
    logger.info(
        "demo generated",
        extra={"demo.reps": options.reps, "demo.days": options.days, "demo.calls": len(calls)},
    )
    return DemoData(options, org, calls, generator.rubric_versions)
