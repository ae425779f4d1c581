"""Keeping the persona in character: spotting odd rep turns, and checking persona replies.

Two sides:

- `detect_probe` reads a rep turn for attempts to step outside the roleplay: asking whether
  the persona is an AI, asking for its prompt, injected instructions, or a swap of roles. The
  persona answers those in character (a deflection), never by complying.
- `check_reply` reads a persona reply before anyone hears it: assistant-speak, talk about
  prompts or instructions, speaking as the company's advisor, and held-back facts told before
  the rep earned them. A reply with a problem is regenerated or replaced by a scripted line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from personas import HeldBack, Persona

ProbeKind = Literal["ai_question", "prompt_probe", "injection", "role_reversal"]

_PROBES: tuple[tuple[ProbeKind, re.Pattern[str]], ...] = (
    (
        "prompt_probe",
        re.compile(
            r"system\s*prompt|\byour (initial |original |hidden )?(instructions|prompt|rules|"
            r"guidelines|programming)\b|what (were|have) you been (told|instructed|programmed)|"
            r"(repeat|print|show|reveal) (me )?(the|your) (text|words|instructions|prompt)",
            re.IGNORECASE,
        ),
    ),
    (
        "injection",
        re.compile(
            r"\b(ignore|disregard|forget|override) (all |any )?(of )?(your |the |my |these |"
            r"those )?(previous |prior |above |earlier |original |system )?(instructions|rules|"
            r"prompts?|directions|character|roleplay|role-play|script)\b|"
            r"\b(ignore|disregard|forget) (everything|all that|all of that) (above|before|"
            r"you('ve| have) been told)\b|"
            r"\bnew instructions\b|\bdeveloper mode\b|\bjailbreak|\bfrom now on,? you\b|"
            r"\byou are now\b|\bstop (the )?(roleplay|role-play|act|acting|pretending)\b|"
            r"\bdrop the act\b|\bout of character\b",
            re.IGNORECASE,
        ),
    ),
    (
        "ai_question",
        re.compile(
            r"\b(are|r) (you|u) (just |actually |really )?(an? )?(ai|a\.i\.|bot|robot|chat ?bot|"
            r"computer|machine|program|language model|llm|gpt|real person|human|real)\b|"
            r"\byou('re| are) (just |actually )?(an? )?(ai|bot|robot|chat ?bot|computer|"
            r"language model)\b|\b(is this|am i talking to) (an? )?(ai|bot|robot|computer|"
            r"machine|real person|human)\b|\bchatgpt\b|\bopenai\b",
            re.IGNORECASE,
        ),
    ),
    (
        "role_reversal",
        re.compile(
            r"\b(swap|switch|reverse|trade) (roles|places|seats)\b|"
            r"\b(you|u) (be|play|act as|take) the (advisor|agent|rep|team lead|assistant|"
            r"manager)\b|\bpretend (you're|you are|to be)\b|\bact as (an?|my|the)\b|"
            r"\byou('re| are) (now )?(the|my|an?) (assistant|advisor|agent|helper|rep)\b|"
            r"\b(write|draft|compose) (me )?(a|an|my) (poem|essay|email|e-mail|story|code|script|"
            r"letter)\b|\bhelp me (write|with my (homework|essay|code))\b",
            re.IGNORECASE,
        ),
    ),
)

_WRAP_UP = re.compile(
    r"^\s*/(end|quit|stop|done)\b|\blet'?s wrap (it |this |things )?up\b|"
    r"\b(end|stop|finish) (the|this) (session|practice|roleplay|role-play)\b|"
    r"\bwrap up (the|this) (session|practice)\b",
    re.IGNORECASE,
)


def detect_probe(text: str) -> ProbeKind | None:
    """The kind of out-of-roleplay attempt `text` makes, or None for an ordinary turn."""
    for kind, pattern in _PROBES:
        if pattern.search(text):
            return kind
    return None


def is_wrap_up(text: str) -> bool:
    """True when the rep asks to end the practice ("let's wrap up", "/end")."""
    return bool(_WRAP_UP.search(text))


# -- output checks --------------------------------------------------------------------------

_ASSISTANT_SPEAK = re.compile(
    r"\bas an ai\b|\b(ai|language) model\b|\bi('m| am) (just )?(an? )?(ai|assistant|chatbot|bot|"
    r"virtual assistant|language model|artificial)\b|\bhow (can|may) i (help|assist) you\b|"
    r"\bi('m| am) here to (help|assist)\b|\bi can(not|'t) (help|assist) with (that|this)\b|"
    r"\bcertainly!|\bhappy to (help|assist)\b|"
    r"\bopenai\b|\bchatgpt\b|\banthropic\b|\bas an? (persona|character|assistant)\b",
    re.IGNORECASE,
)
_META = re.compile(
    r"system\s*prompt|\bmy (instructions|prompt|programming|guidelines|rules)\b|"
    r"\bi (was|am|have been|'ve been) (told|instructed|programmed|designed)\b|"
    r"\brole-?play\b|\bin character\b|\bout of character\b|\bthis (scenario|simulation|exercise)\b|"
    r"\bpersona\b|\bpractice session\b|\bscripted\b|\bheld[- ]back\b",
    re.IGNORECASE,
)
_SPEAKER_PREFIX = re.compile(r"^\s*\**([A-Z][\w .'-]{0,40}|advisor|customer|persona)\**\s*:\s*")


@dataclass(frozen=True, slots=True)
class ReplyProblem:
    kind: Literal["empty", "too_long", "assistant_speak", "meta", "advisor_voice", "leak"]
    detail: str


def clean_reply(text: str, persona: Persona) -> str:
    """Strip what models wrap replies in: a speaker label, surrounding quotes, stray space."""
    cleaned = text.strip()
    match = _SPEAKER_PREFIX.match(cleaned)
    if match and (
        match.group(1).lower() in {"advisor", "customer", "persona"}
        or persona.name.lower().startswith(match.group(1).lower().strip())
    ):
        cleaned = cleaned[match.end() :]
    if len(cleaned) >= 2 and cleaned[0] == cleaned[-1] and cleaned[0] in "\"'":
        cleaned = cleaned[1:-1]
    return " ".join(cleaned.split())


def _advisor_voice(company_name: str) -> re.Pattern[str]:
    return re.compile(
        rf"\bthanks? (you )?for (calling|contacting) ({re.escape(company_name)}|us)\b|"
        r"\bcan i (take|have|grab) (your|the) (postcode|account number|date of birth|"
        r"security answer)\b|\byour reference (number )?is\b|"
        r"\bi('ve| have) (raised|booked|logged|processed|applied) (a|the|your)\b|"
        r"\bis there anything else i can (help|do)\b",
        re.IGNORECASE,
    )


def check_reply(
    text: str,
    *,
    persona: Persona,
    unreleased: Iterable[HeldBack],
    company_name: str,
    max_words: int = 90,
) -> list[ReplyProblem]:
    """Everything wrong with a persona reply, or an empty list when it can be said."""
    problems: list[ReplyProblem] = []
    if not text.strip():
        return [ReplyProblem("empty", "the reply is empty")]
    words = len(text.split())
    if words > max_words:
        problems.append(ReplyProblem("too_long", f"{words} words; keep to one to three sentences"))
    if match := _ASSISTANT_SPEAK.search(text):
        problems.append(ReplyProblem("assistant_speak", f"sounds like an assistant: {match[0]!r}"))
    if match := _META.search(text):
        problems.append(ReplyProblem("meta", f"talks about the roleplay itself: {match[0]!r}"))
    if persona.kind == "customer" and (match := _advisor_voice(company_name).search(text)):
        problems.append(
            ReplyProblem("advisor_voice", f"speaks as the company's advisor: {match[0]!r}")
        )
    lowered = text.lower()
    for item in unreleased:
        for marker in item.markers:
            if marker.lower() in lowered:
                problems.append(
                    ReplyProblem("leak", f"tells held-back `{item.id}` before it was earned")
                )
                break
    return problems
