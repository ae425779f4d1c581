"""Block Kit builders: every message, modal and Home tab the Slack app shows.

Pure functions from the core's payloads and results to Block Kit JSON, so they can be tested
without Slack. Text that came from people (transcript quotes, reasons, names) is escaped
before it goes into `mrkdwn`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from coaching.disputes import DisputableScore
from coaching.home import AssignmentItem, Home
from coaching.reports import TeamGaps
from scenarios import PracticeResult, SessionStart

Block = dict[str, Any]

PRACTISE_NOW = "practise_now"
PRACTICE_END = "practice_end"
DISPUTE_OPEN = "dispute_open"
DISPUTE_SUBMIT = "dispute_submit"
COHORT_APPROVE = "cohort_approve"
COHORT_DECLINE = "cohort_decline"
DISPUTE_UPHOLD = "dispute_uphold"
DISPUTE_CHANGE = "dispute_change"
OPEN_LINK = "open_link"

SECTION_LIMIT = 3000
QUOTE_LIMIT = 400
MAX_BLOCKS = 50


# -- small pieces ---------------------------------------------------------------------------


def escape(text: object) -> str:
    """Text safe inside `mrkdwn`: Slack's three control characters escaped."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": clip(text, SECTION_LIMIT)}


def plain(text: str, limit: int = 150) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text, limit), "emoji": True}


def section(text: str) -> Block:
    return {"type": "section", "text": mrkdwn(text)}


def context(text: str) -> Block:
    return {"type": "context", "elements": [mrkdwn(text)]}


def header(text: str) -> Block:
    return {"type": "header", "text": plain(text)}


def divider() -> Block:
    return {"type": "divider"}


def button(
    text: str,
    action_id: str,
    value: str | Mapping[str, Any] = "",
    *,
    style: str | None = None,
    url: str | None = None,
) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "button", "text": plain(text, 75), "action_id": action_id}
    if value:
        element["value"] = value if isinstance(value, str) else json.dumps(value)
    if style:
        element["style"] = style
    if url:
        element["url"] = url
    return element


def actions(*elements: dict[str, Any], block_id: str | None = None) -> Block:
    block: Block = {"type": "actions", "elements": list(elements)}
    if block_id:
        block["block_id"] = block_id
    return block


def quote(text: object) -> str:
    return "> " + escape(clip(" ".join(str(text).split()), QUOTE_LIMIT))


def level_bar(level: int | None) -> str:
    if level is None:
        return "n/a"
    return "●" * level + "○" * (3 - level) + f" {level}/3"


def trend_mark(delta: float | None) -> str:
    if delta is None:
        return "no earlier figure"
    if abs(delta) < 0.005:
        return "▬ no change"
    return f"{'▲' if delta > 0 else '▼'} {delta:+.2f}"


def figure(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def share(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def day(value: str | datetime | date | None) -> str:
    if value is None:
        return "an earlier call"
    if isinstance(value, str):
        try:
            return f"{datetime.fromisoformat(value):%a %d %b}"
        except ValueError:
            return value
    return f"{value:%a %d %b}"


def fallback(blocks: Iterable[Block], limit: int = 3000) -> str:
    """Notification text for a message: its first lines of text."""
    lines = []
    for block in blocks:
        text = block.get("text")
        if isinstance(text, dict) and text.get("text"):
            lines.append(str(text["text"]))
        if len(lines) >= 2:
            break
    return clip(" · ".join(lines), limit) or "coachloop"


def limited(blocks: list[Block]) -> list[Block]:
    """At most Slack's 50 blocks: the last kept is a note that the rest was left out."""
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    kept = [b for b in blocks if b.get("type") == "actions"][-1:]
    head = blocks[: MAX_BLOCKS - 1 - len(kept)]
    return [*head, context("(shortened: the full list is in coachloop's outbox)"), *kept]


# -- outbox messages ------------------------------------------------------------------------


def _good(criterion: Mapping[str, Any]) -> list[str]:
    good = criterion.get("good_looks_like") or {}
    lines = []
    if good.get("anchor"):
        lines.append(f"*What good looks like:* {escape(good['anchor'])}")
    for example in (good.get("examples") or [])[:1]:
        lines.append(f"_e.g. “{escape(clip(example, QUOTE_LIMIT))}”_")
    return lines


def rep_feedback(payload: Mapping[str, Any]) -> list[Block]:
    """Feedback on one scored call or practice session, with what to work on."""
    interaction = payload.get("interaction") or {}
    what = "practice session" if interaction.get("kind") == "practice" else "call"
    blocks = [
        header(f"Feedback on your {what} of {day(interaction.get('started_at'))}"),
        section(escape(payload.get("headline", ""))),
    ]
    for c in payload.get("criteria", []):
        name = escape(c.get("name") or c.get("id"))
        lines = [f"*{name}*   {level_bar(c.get('level'))}"]
        moment = c.get("moment") or {}
        if c.get("gap") and moment.get("quote"):
            at = moment.get("time") or (
                f"turn {moment['turn']}" if moment.get("turn") is not None else "in the call"
            )
            lines.append(f"At {escape(at)}:\n{quote(moment['quote'])}")
        if c.get("gap"):
            lines.extend(_good(c))
        blocks.append(section("\n".join(lines)))
    buttons = []
    assignment = payload.get("assignment")
    if assignment and assignment.get("id") is not None:
        title = assignment.get("title") or assignment.get("scenario")
        blocks.append(
            context(f"Practice picked for you: *{escape(title)}*. {escape(assignment['reason'])}")
        )
        buttons.append(
            button(
                "Practise now",
                PRACTISE_NOW,
                {"assignment_id": assignment["id"], "scenario": assignment.get("scenario")},
                style="primary",
            )
        )
    if interaction.get("id") is not None:
        buttons.append(button("Dispute", DISPUTE_OPEN, {"interaction_id": interaction["id"]}))
    if buttons:
        blocks.append(actions(*buttons, block_id="feedback_actions"))
    return limited(blocks)


def assignment(payload: Mapping[str, Any]) -> list[Block]:
    """A practice assignment (for example after a team response was approved)."""
    title = payload.get("title") or payload.get("scenario")
    blocks = [
        section(f"*New practice for you:* {escape(title)}"),
        context(escape(payload.get("reason", ""))),
    ]
    if payload.get("id") is not None:
        blocks.append(
            actions(
                button(
                    "Practise now",
                    PRACTISE_NOW,
                    {"assignment_id": payload["id"], "scenario": payload.get("scenario")},
                    style="primary",
                )
            )
        )
    return blocks


def _evidence(moments: Sequence[Mapping[str, Any]], limit: int = 3) -> list[str]:
    lines = []
    for m in list(moments)[:limit]:
        if not m.get("quote"):
            continue
        at = f" at {m['time']}" if m.get("time") else ""
        where = f"{day(m.get('at'))}{at}, level {m.get('level', '?')}"
        lines.append(f"{escape(where)}:\n{quote(m['quote'])}")
    return lines


def _who(person: Mapping[str, Any] | None) -> str:
    if not person:
        return "a rep"
    if person.get("slack_user_id"):
        return f"<@{person['slack_user_id']}>"
    return escape(person.get("name") or person.get("external_id") or "a rep")


def manager_alert(payload: Mapping[str, Any]) -> list[Block]:
    """Individual coaching, a declining criterion or a flagged interaction, with evidence."""
    criterion = (payload.get("criterion") or {}).get("name") or "a criterion"
    blocks = [
        header(str(payload.get("title") or "Coaching alert")),
        section(
            f"{_who(payload.get('rep'))} on *{escape(criterion)}*: "
            f"{escape(payload.get('summary', ''))}"
        ),
    ]
    why = payload.get("why") or {}
    evidence = _evidence(why.get("moments") or [])
    for item in why.get("criteria") or []:  # a flagged interaction names each low criterion
        moment = item.get("moment") or {}
        if moment.get("quote"):
            evidence.append(
                f"{escape(item.get('criterion_id'))} at level {item.get('level')}:\n"
                f"{quote(moment['quote'])}"
            )
    if evidence:
        blocks.append(section("*The evidence*\n" + "\n".join(evidence)))
    sessions = why.get("sessions") or []
    if sessions:
        levels = ", ".join(str(s.get("level")) for s in sessions[-8:])
        blocks.append(context(f"Levels in the window, oldest first: {levels}"))
    assignment_ = payload.get("assignment")
    if assignment_:
        title = assignment_.get("title") or assignment_.get("scenario")
        blocks.append(context(f"Practice assigned: *{escape(title)}*"))
    return limited(blocks)


def cohort_alert(payload: Mapping[str, Any]) -> list[Block]:
    """A team gap: one response for the team, to approve or decline."""
    team = payload.get("team") or {}
    criterion = (payload.get("criterion") or {}).get("name") or "a criterion"
    blocks = [
        header(str(payload.get("title") or "Team gap")),
        section(
            f"*{escape(team.get('name') or team.get('slug') or 'Your team')}* on "
            f"*{escape(criterion)}*: {escape(payload.get('summary', ''))}"
        ),
    ]
    reps = payload.get("reps") or []
    if reps:
        names = ", ".join(
            f"{_who(r)} ({figure(r.get('mean'))})" for r in reps[:15] if isinstance(r, dict)
        )
        more = f" and {len(reps) - 15} more" if len(reps) > 15 else ""
        blocks.append(section(f"*Below the bar:* {names}{more}"))
    evidence = _evidence(payload.get("moments") or [])
    if evidence:
        blocks.append(section("*Moments from their calls*\n" + "\n".join(evidence)))
    suggestion = payload.get("suggestion") or {}
    plan = []
    session = suggestion.get("team_session") or {}
    if session:
        plan.append(f"*{escape(session.get('title'))}* ({session.get('minutes', 30)} minutes)")
        plan.extend(f"• {escape(step)}" for step in session.get("agenda") or [])
    if suggestion.get("scenario"):
        title = suggestion.get("scenario_title") or suggestion["scenario"]
        plan.append(f"Shared practice for each rep: *{escape(title)}*")
    elif suggestion.get("note"):
        plan.append(escape(suggestion["note"]))
    if plan:
        blocks.append(section("*Suggested response*\n" + "\n".join(plan)))
    if payload.get("auto_approve_at"):
        blocks.append(
            context(f"Goes ahead on its own on {day(payload['auto_approve_at'])} unless declined")
        )
    if payload.get("decision_id") is not None:
        value = str(payload["decision_id"])
        blocks.append(
            actions(
                button("Approve", COHORT_APPROVE, value, style="primary"),
                button("Decline", COHORT_DECLINE, value, style="danger"),
                block_id="cohort_actions",
            )
        )
    return limited(blocks)


def dispute(payload: Mapping[str, Any]) -> list[Block]:
    """A rep's dispute of a score, for the manager to resolve."""
    blocks = [
        header("A score is disputed"),
        section(
            f"{_who(payload.get('rep'))} disputes *{escape(payload.get('criterion_id'))}* "
            f"(level {payload.get('level')}) on interaction {payload.get('interaction_id')}."
        ),
        section(f"*Their reason*\n{quote(payload.get('reason', ''))}"),
    ]
    evidence = [
        f"{escape(c.get('id'))}: {'seen' if c.get('observed') else 'not seen'}"
        + (f"\n{quote(c['quote'])}" if c.get("quote") else "")
        for c in (payload.get("checks") or [])[:5]
        if isinstance(c, dict)
    ]
    if evidence:
        blocks.append(section("*What the judge saw*\n" + "\n".join(evidence)))
    if payload.get("dispute_id") is not None:
        value = str(payload["dispute_id"])
        blocks.append(
            actions(
                button("Score stands", DISPUTE_UPHOLD, value),
                button("Change the score", DISPUTE_CHANGE, value, style="primary"),
                block_id="dispute_actions",
            )
        )
    return limited(blocks)


def digest(payload: Mapping[str, Any]) -> list[Block]:
    """The day's held alerts for a manager who prefers one message a day."""
    items = payload.get("items") or []
    blocks = [
        header(f"Daily digest: {len(items)} alert{'s' if len(items) != 1 else ''}"),
        context(f"Alerts held until {day(payload.get('day'))}"),
    ]
    for item in items:
        criterion = (item.get("criterion") or {}).get("name") or ""
        blocks.append(
            section(
                f"*{escape(item.get('title') or 'Alert')}*: {_who(item.get('rep'))}"
                f"{' on ' + escape(criterion) if criterion else ''}\n"
                f"{escape(item.get('summary', ''))}"
            )
        )
    return limited(blocks)


RENDERERS = {
    "rep_feedback": rep_feedback,
    "assignment": assignment,
    "manager_alert": manager_alert,
    "cohort_alert": cohort_alert,
    "dispute": dispute,
    "digest": digest,
}


def outbox_message(kind: str, payload: Mapping[str, Any]) -> list[Block]:
    """Blocks for any outbox message kind."""
    render = RENDERERS.get(kind)
    if render is None:
        raise ValueError(f"No Slack rendering for message kind `{kind}`")
    return render(payload)


def decided(blocks: Sequence[Block], note: str) -> list[Block]:
    """The same message with its buttons replaced by what was decided."""
    kept = [b for b in blocks if b.get("type") != "actions"]
    return [*kept, context(note)]


# -- /team-gaps -----------------------------------------------------------------------------


def team_gaps(
    gaps: TeamGaps, *, dashboard_url: str | None = None, chart: bool = True
) -> list[Block]:
    """Per criterion: mean, share below the bar, trend and cohort flag; then the largest gaps."""
    blocks = [
        header(f"{gaps.team_name}: team gaps"),
        context(
            f"{gaps.period.label}, against {gaps.previous.label}. "
            f"Below the bar: a rep's mean under {gaps.threshold:g}."
        ),
    ]
    if not gaps.criteria:
        blocks.append(section("No scored calls for this team in the period."))
    for c in gaps.criteria:
        flag = (
            "\n:rotating_light: *Cohort gap*: one team response, not rep by rep" if c.cohort else ""
        )
        blocks.append(
            {
                "type": "section",
                "text": mrkdwn(f"*{escape(c.name)}*{flag}"),
                "fields": [
                    mrkdwn(f"*Mean* {figure(c.mean)}  ({trend_mark(c.trend)})"),
                    mrkdwn(
                        f"*Below the bar* {c.reps_below}/{c.reps_eligible} reps "
                        f"({share(c.share_reps_below)})"
                    ),
                    mrkdwn(f"*Sessions* {c.sessions}"),
                    mrkdwn(f"*Level 1 sessions* {share(c.share_sessions_below)}"),
                ],
            }
        )
    if gaps.largest_gaps:
        lines = [
            f"• {escape(g['name'])}: {escape(g['criterion'])} {figure(g['mean'])} "
            f"over {g['sessions']} calls"
            for g in gaps.largest_gaps
        ]
        blocks.append(section("*Largest gaps*\n" + "\n".join(lines)))
    notes = []
    if chart:
        notes.append("The criterion trend chart is in your messages with coachloop.")
    if notes:
        blocks.append(context(" ".join(notes)))
    if dashboard_url:
        blocks.append(actions(button("Open the dashboard", OPEN_LINK, url=dashboard_url)))
    return limited(blocks)


# -- practice -------------------------------------------------------------------------------


def practice_menu(
    assignments: Sequence[AssignmentItem],
    titles: Mapping[str, str],
    *,
    voice_url: str | None = None,
) -> list[Block]:
    """The rep's open practice, each with a button to start it here as a text roleplay."""
    if not assignments:
        blocks = [
            section(
                "You have no practice assigned right now. New practice arrives with your "
                "feedback when a criterion needs work."
            )
        ]
    else:
        blocks = [section(f"*Your practice* ({len(assignments)} open)")]
    for a in assignments[:20]:
        title = titles.get(a.scenario, a.scenario)
        blocks.append(
            {
                "type": "section",
                "text": mrkdwn(
                    f"*{escape(title)}*\nFor *{escape(a.criterion)}*"
                    f"{', ' + escape(a.difficulty) if a.difficulty else ''}"
                ),
                "accessory": button(
                    "Practise now",
                    PRACTISE_NOW,
                    {"assignment_id": a.id, "scenario": a.scenario},
                    style="primary",
                ),
            }
        )
    if voice_url:
        blocks.append(actions(button("Practise by voice", OPEN_LINK, url=voice_url)))
    blocks.append(
        context("Or `/practice SCENARIO` for any scenario. Text practice runs in a DM thread.")
    )
    return limited(blocks)


def practice_intro(title: str, briefing: str, persona: str, turn_limit: int) -> list[Block]:
    """The top of a practice thread: the briefing and how it works."""
    return [
        header(f"Practice: {title}"),
        section(escape(briefing)),
        context(
            f"You're talking to *{escape(persona)}*. Reply in this thread, up to "
            f"{turn_limit} turns; say “let's wrap up” or press *End* when you're done, and "
            "you'll get your feedback here."
        ),
    ]


def persona_turn(persona: str, text: str, *, session_id: str | None = None) -> list[Block]:
    blocks = [section(f"*{escape(persona)}:* {escape(text)}")]
    if session_id:
        blocks.append(actions(button("End", PRACTICE_END, session_id)))
    return blocks


def practice_started(start: SessionStart) -> str:
    return f"Your practice “{start.title}” is open in your messages with coachloop."


def practice_result(result: PracticeResult) -> list[Block]:
    """Scored feedback at the end of a practice session."""
    outcome = result.outcome.replace("_", " ")
    blocks = [
        header(f"Your feedback: {result.title}"),
        context(f"{outcome.capitalize()} after {result.rep_turns} turns"),
    ]
    if result.unscored_reason:
        blocks.append(section(f"Not scored: {escape(result.unscored_reason)}"))
    real = {c.criterion_id: c for c in result.comparison}
    for item in result.feedback:
        mark = "  _(practised)_" if item.targeted else ""
        lines = [f"*{escape(item.name)}*{mark}   {level_bar(item.level)}"]
        if item.moment is not None and item.level is not None and item.level < 3:
            lines.append(quote(item.moment.quote))
        if item.level is not None and item.level < 3:
            lines.append(f"*What good looks like:* {escape(item.good_looks_like)}")
            if item.next_step:
                lines.append(f"*Next time:* {escape(item.next_step)}")
        compared = real.get(item.criterion_id)
        if compared is not None and compared.real_mean is not None:
            lines.append(
                f"_Your real calls: {compared.real_mean:.2f} over {compared.real_sessions}_"
            )
        blocks.append(section("\n".join(lines)))
    return limited(blocks)


# -- disputes -------------------------------------------------------------------------------


def dispute_modal(scores: Sequence[DisputableScore], interaction_id: int) -> dict[str, Any]:
    """A modal asking which score is wrong and why."""
    options = [
        {
            "text": plain(f"{s.name}: {level_bar(s.level)}", 75),
            "value": str(s.score_id),
        }
        for s in scores
        if not s.open_dispute
    ]
    blocks: list[Block] = [
        section(
            "Tell your manager which score you think is wrong and why. They see the moment "
            "the judge used and your reason."
        ),
        {
            "type": "input",
            "block_id": "criterion",
            "label": plain("Criterion"),
            "element": {
                "type": "static_select",
                "action_id": "score",
                "options": options,
                **({"initial_option": options[0]} if len(options) == 1 else {}),
            },
        },
        {
            "type": "input",
            "block_id": "reason",
            "label": plain("What did the score miss?"),
            "element": {
                "type": "plain_text_input",
                "action_id": "text",
                "multiline": True,
                "min_length": 5,
                "max_length": 2000,
            },
        },
    ]
    return {
        "type": "modal",
        "callback_id": DISPUTE_SUBMIT,
        "private_metadata": json.dumps({"interaction_id": interaction_id}),
        "title": plain("Dispute a score", 24),
        "submit": plain("Send", 24),
        "close": plain("Cancel", 24),
        "blocks": blocks,
    }


# -- App Home -------------------------------------------------------------------------------


def home(
    view: Home,
    titles: Mapping[str, str],
    *,
    web_base_url: str | None = None,
) -> dict[str, Any]:
    """The Home tab: a rep's trends, practice and feedback; a manager's teams at a glance."""
    blocks: list[Block] = [header("Your coaching"), context(f"Last 30 days: {view.period.label}")]
    if view.access == "rep":
        blocks.append(section("*Your criteria*, against the 30 days before"))
        if not view.progress:
            blocks.append(context("No scored calls in the period yet."))
        for row in view.progress:
            name = view.criterion_names.get(row.criterion_id, row.criterion_id)
            below = "  :small_red_triangle_down: below the bar" if row.below else ""
            blocks.append(
                section(
                    f"*{escape(name)}*  {figure(row.mean)} ({trend_mark(row.trend)}), "
                    f"{row.sessions} calls{below}"
                )
            )
        blocks.append(divider())
        blocks.extend(practice_menu(view.assignments, titles))
        blocks.append(divider())
        blocks.append(section("*Recent feedback*"))
        if not view.feedback:
            blocks.append(context("Feedback arrives here and in your messages after each call."))
        for item in view.feedback:
            levels = ", ".join(f"{escape(n)} {lvl if lvl else 'n/a'}" for n, lvl in item.levels)
            what = "Practice" if item.kind == "practice" else "Call"
            blocks.append(section(f"*{what}, {day(item.at)}*: {escape(item.headline)}\n{levels}"))
    else:
        if not view.teams:
            blocks.append(section("You don't look after any team in coachloop yet."))
        for glance in view.teams:
            gaps = glance.gaps
            lines = [
                f"• {escape(c.name)}: {figure(c.mean)} ({trend_mark(c.trend)}), "
                f"{share(c.share_reps_below)} of reps below"
                + ("  :rotating_light: cohort gap" if c.cohort else "")
                for c in gaps.criteria
            ]
            waiting = []
            if glance.pending_decisions:
                waiting.append(f"{glance.pending_decisions} team response(s) to approve")
            if glance.open_disputes:
                waiting.append(f"{glance.open_disputes} dispute(s) to resolve")
            blocks.append(
                section(
                    f"*{escape(gaps.team_name)}* (`{escape(gaps.team_slug)}`)\n"
                    + ("\n".join(lines) or "No scored calls in the period.")
                )
            )
            if waiting:
                blocks.append(context(" · ".join(waiting)))
        blocks.append(context("`/team-gaps TEAM PERIOD` for the full picture, with a chart."))
        if web_base_url:
            url = f"{web_base_url.rstrip('/')}/teams"
            blocks.append(actions(button("Open the dashboard", OPEN_LINK, url=url)))
    return {"type": "home", "blocks": limited(blocks)}
