"""Rubric lint: catch criteria that raters will not agree on before calibration does.

Each finding names where it is, what is wrong, and what to write instead. Errors block a
rubric from going live; warnings are advice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from itertools import combinations

from config.rubric import LEVELS, RECOMMENDED_MAX_CRITERIA, Check, Criterion, Rubric


class Severity(StrEnum):
    error = "error"
    warning = "warning"


@dataclass(frozen=True)
class Finding:
    severity: Severity
    where: str
    problem: str
    suggestion: str


# Traits and attitudes: a rater has to guess them, so two raters disagree.
_TRAIT_PATTERNS: dict[str, str] = {
    r"\bshows? empathy\b|\bempathetic\b|\bempathi[sz]es\b": "empathy",
    r"\b(is|be|being) friendly\b|\bfriendliness\b": "friendliness",
    r"\bpositive attitude\b|\battitude\b": "attitude",
    r"\bgood listener\b|\blistens well\b": "listening",
    r"\b(is|be|being) (professional|polite|confident|patient|caring|warm|enthusiastic)\b": "manner",
    r"\bprofessionalism\b|\bconfidence\b|\benthusiasm\b|\bpassion(ate)?\b": "manner",
    r"\bgenuine(ly)?\b|\bsincere(ly)?\b|\bauthentic\b": "sincerity",
    r"\bcustomer[- ]centric\b|\bgoes the extra mile\b": "disposition",
}

# Things a transcript cannot show.
_UNVERIFIABLE_PATTERNS: dict[str, str] = {
    r"\bfeels?\b|\bfelt\b": "what someone feels",
    r"\bbelieves?\b|\bthinks?\b|\bintends?\b|\bwants? to\b": "what someone thinks or intends",
    r"\bcares?\b|\bcaring\b": "whether someone cares",
    r"\btone of voice\b|\bsmil(e|es|ing)\b|\bbody language\b|\beye contact\b": "what is not in the words",
    r"\bmood\b|\battitude\b|\bpersonality\b": "a disposition",
    r"\bgood\b|\bappropriate(ly)?\b|\bproperly\b|\bwell\b|\beffective(ly)?\b": "a judgement word",
}
_YES_NO_START = re.compile(
    r"^(does|did|do|is|are|was|were|has|have|had|can|could|will|would|should)\b", re.IGNORECASE
)
_STOPWORDS = frozenset(
    "a an and the of to in on for with before after or by is are be any their its it that this "
    "what when while from as at into them they customer customers rep reps advisor".split()
)

_BEHAVIOUR_EXAMPLE = "acknowledges the concern before redirecting to process"


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z']+", text.lower()) if w not in _STOPWORDS and len(w) > 2}


def traits_in(text: str) -> list[str]:
    """Names of the traits or attitudes `text` describes ("shows empathy": `empathy`)."""
    return [name for pattern, name in _TRAIT_PATTERNS.items() if re.search(pattern, text, re.I)]


def unverifiable_in(text: str) -> list[str]:
    """What in `text` no reviewer can verify from a transcript ("feels": `what someone feels`)."""
    return [
        what for pattern, what in _UNVERIFIABLE_PATTERNS.items() if re.search(pattern, text, re.I)
    ]


def _lint_check(check: Check, where: str) -> list[Finding]:
    findings: list[Finding] = []
    for what in unverifiable_in(check.question)[:1]:
        findings.append(
            Finding(
                Severity.error,
                where,
                f"the question asks about {what}, which no reviewer can verify from a "
                f"transcript: {check.question!r}",
                "ask about words the rep says, e.g. 'Does the rep restate the customer's "
                "problem in their own words?'",
            )
        )
    if not _YES_NO_START.match(check.question.strip()):
        findings.append(
            Finding(
                Severity.warning,
                where,
                f"the question is not a yes/no question: {check.question!r}",
                "start with 'Does the rep ...' so every rater answers yes or no",
            )
        )
    if not check.exemplars:
        findings.append(
            Finding(
                Severity.warning,
                where,
                "the check has no exemplar phrases",
                "add two or more phrases from real calls that meet the check; the offline "
                "judge and new raters learn from them",
            )
        )
    return findings


def _lint_criterion(criterion: Criterion) -> list[Finding]:
    findings: list[Finding] = []
    where = f"criteria.{criterion.id}"
    for field_name, text in (("name", criterion.name), ("behaviour", criterion.behaviour)):
        traits = traits_in(text)
        if traits:
            findings.append(
                Finding(
                    Severity.error,
                    f"{where}.{field_name}",
                    f"describes a trait ({', '.join(traits)}), not an observable behaviour: "
                    f"{text!r}",
                    f"say what the rep does that a reviewer can point to, e.g. "
                    f"'{_BEHAVIOUR_EXAMPLE}'",
                )
            )
    for level in LEVELS:
        spec = criterion.levels[level]
        level_where = f"{where}.levels.{level}"
        if not spec.checks:
            severity = Severity.warning if level == 1 else Severity.error
            findings.append(
                Finding(
                    severity,
                    level_where,
                    f"level {level} has no checks, so nothing decides it",
                    "add yes/no checks a reviewer can answer from the transcript"
                    if level > 1
                    else "add a check that describes the poor behaviour, as evidence for level 1",
                )
            )
        if not spec.examples:
            findings.append(
                Finding(
                    Severity.warning,
                    level_where,
                    f"level {level} has no example phrases from real calls",
                    "add language from calibrated calls so raters recognise the level",
                )
            )
        for check in spec.checks:
            findings.extend(_lint_check(check, f"{level_where}.checks.{check.id}"))
    if criterion.applies_when is not None:
        findings.extend(_lint_check(criterion.applies_when, f"{where}.applies_when"))
    anchors = [criterion.levels[lvl].anchor.strip().lower() for lvl in LEVELS]
    if len(set(anchors)) < len(anchors):
        findings.append(
            Finding(
                Severity.error,
                f"{where}.levels",
                "two levels share the same anchor description",
                "make each level's anchor say what is different about it",
            )
        )
    return findings


def _lint_overlap(rubric: Rubric) -> list[Finding]:
    findings: list[Finding] = []
    for a, b in combinations(rubric.criteria, 2):
        words_a, words_b = _words(f"{a.name} {a.behaviour}"), _words(f"{b.name} {b.behaviour}")
        if words_a and words_b:
            jaccard = len(words_a & words_b) / len(words_a | words_b)
            if jaccard >= 0.45:
                findings.append(
                    Finding(
                        Severity.warning,
                        f"criteria.{a.id} / criteria.{b.id}",
                        f"the two criteria describe overlapping behaviour ({jaccard:.0%} shared "
                        "words); raters will score the same moment twice",
                        "merge them, or make each name a distinct behaviour",
                    )
                )
        phrases_a = {p.strip().lower() for c in a.checks for p in c.exemplars}
        phrases_b = {p.strip().lower() for c in b.checks for p in c.exemplars}
        shared = sorted(phrases_a & phrases_b)
        if shared:
            findings.append(
                Finding(
                    Severity.warning,
                    f"criteria.{a.id} / criteria.{b.id}",
                    f"the same exemplar phrase counts for both criteria: {shared[0]!r}",
                    "keep each phrase under the one criterion it shows",
                )
            )
    return findings


def lint_rubric(rubric: Rubric) -> list[Finding]:
    findings: list[Finding] = []
    count = len(rubric.criteria)
    if count > RECOMMENDED_MAX_CRITERIA:
        findings.append(
            Finding(
                Severity.warning,
                "criteria",
                f"{count} criteria; more than five makes calibration slow and spreads a "
                "rep's attention across too many behaviours",
                "keep the three to five behaviours that matter most for this role",
            )
        )
    elif count < 3:
        findings.append(
            Finding(
                Severity.warning,
                "criteria",
                f"only {count} criteria; three to five give a rep a useful picture",
                "add the behaviours the role's best calls have in common",
            )
        )
    weights = [c.weight for c in rubric.criteria if c.weight is not None]
    if weights and abs(sum(weights) - 100) > 1e-6:
        findings.append(
            Finding(
                Severity.error,
                "criteria.*.weight",
                f"weights add up to {sum(weights):g}, not 100",
                "adjust them to add up to 100, or remove every weight for equal weights",
            )
        )
    for criterion in rubric.criteria:
        findings.extend(_lint_criterion(criterion))
    findings.extend(_lint_overlap(rubric))
    return findings


def has_errors(findings: list[Finding]) -> bool:
    return any(f.severity is Severity.error for f in findings)
