"""Persona engines: the scripted persona (no network) and the LLM persona (OpenAI-compatible)."""

from scenarios.engines.base import DialogueTurn, Outcome, PersonaEngine, PersonaRequest, ReplyKind
from scenarios.engines.scripted import ScriptedPersona

__all__ = [
    "DialogueTurn",
    "Outcome",
    "PersonaEngine",
    "PersonaRequest",
    "ReplyKind",
    "ScriptedPersona",
]
