"""Persona engines: the scripted persona (no network) and the LLM persona (OpenAI-compatible)."""

from config.settings import LlmSettings
from scenarios.engines.base import DialogueTurn, Outcome, PersonaEngine, PersonaRequest, ReplyKind
from scenarios.engines.scripted import ScriptedPersona

__all__ = [
    "DialogueTurn",
    "Outcome",
    "PersonaEngine",
    "PersonaRequest",
    "ReplyKind",
    "ScriptedPersona",
    "make_engine",
]


def make_engine(kind: str, llm: LlmSettings | None = None) -> PersonaEngine:
    """The persona engine by kind: `scripted`, `llm`, or `auto` (LLM when one is configured).

    Raises:
        ValueError: Unknown kind, or `llm` without an endpoint in `llm`.
    """
    configured = llm is not None and (llm.base_url is not None or llm.api_key is not None)
    if kind == "scripted" or (kind == "auto" and not configured):
        return ScriptedPersona()
    if kind in ("llm", "auto"):
        if llm is None or not configured:
            raise ValueError(
                "The LLM persona needs an endpoint; set COACHLOOP_LLM__BASE_URL (and "
                "COACHLOOP_LLM__API_KEY if it needs one), or use the scripted persona"
            )
        from scenarios.engines.llm import LlmPersona

        return LlmPersona.from_settings(llm)
    raise ValueError(f"No persona engine `{kind}`; choose scripted, llm or auto")
