"""Speaker labels ("Agent Sam", "CUSTOMER", "spk_1") to agent, customer or other."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

from store.models import Speaker

_STRIP = " \t[]()<>*#:-_>"


def _norm(label: str) -> str:
    return " ".join(label.strip(_STRIP).casefold().split())


def _starts_with_label(label: str, prefix: str) -> bool:
    if not label.startswith(prefix):
        return False
    return len(label) == len(prefix) or not label[len(prefix)].isalpha()


class SpeakerResolver:
    """Map a label to a speaker: exact overrides first, then the configured label prefixes.

    A label matches a configured label when it equals it or starts with it followed by a
    non-letter ("Agent Sam", "agent_2", "Customer (Ana)"), case-insensitively.
    """

    def __init__(
        self,
        agent_labels: Iterable[str],
        customer_labels: Iterable[str],
        *,
        overrides: Mapping[str, Speaker] | None = None,
        unknown: Literal["reject", "other"] = "reject",
    ) -> None:
        self._agent = [_norm(x) for x in agent_labels if _norm(x)]
        self._customer = [_norm(x) for x in customer_labels if _norm(x)]
        self._overrides = {_norm(k): v for k, v in (overrides or {}).items()}
        self._unknown = unknown
        self._cache: dict[str, Speaker | None] = {}

    def resolve(self, label: str) -> Speaker | None:
        """The speaker for `label`, or None when it is unknown and unknowns are rejected."""
        try:
            return self._cache[label]
        except KeyError:
            pass
        speaker = self._resolve(_norm(label))
        self._cache[label] = speaker
        return speaker

    def is_known(self, label: str) -> bool:
        """True when the label itself names a speaker (not only by the `unknown` fallback)."""
        norm = _norm(label)
        return norm in self._overrides or self._match(norm) is not None

    def _resolve(self, norm: str) -> Speaker | None:
        if norm in self._overrides:
            return self._overrides[norm]
        matched = self._match(norm)
        if matched is not None:
            return matched
        return Speaker.other if self._unknown == "other" else None

    def _match(self, norm: str) -> Speaker | None:
        if norm in (Speaker.agent.value, Speaker.customer.value, Speaker.other.value):
            return Speaker(norm)
        if any(_starts_with_label(norm, p) for p in self._agent):
            return Speaker.agent
        if any(_starts_with_label(norm, p) for p in self._customer):
            return Speaker.customer
        return None

    def unknown_reason(self, label: str, where: str) -> str:
        shown = label.strip() or "(empty)"
        return (
            f"{where}: speaker `{shown}` is neither an agent nor a customer label; start it with "
            f"one of {', '.join(self._agent[:4])} or {', '.join(self._customer[:4])}, or map it "
            "under `speakers:` in a mapping file (--mapping FILE)"
        )
