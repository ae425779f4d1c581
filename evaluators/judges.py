"""Build a judge by kind for the command line: `offline` (no network) or `llm`.

The judge modules load models or HTTP clients, so they are imported only when asked for.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from types import ModuleType
from typing import Literal

from config.settings import Settings
from evaluators.base import EvaluatorError, Judge

logger = logging.getLogger(__name__)

JudgeKind = Literal["offline", "llm"]
JUDGE_KINDS: tuple[JudgeKind, ...] = ("offline", "llm")


class JudgeUnavailableError(EvaluatorError):
    """The asked-for judge cannot be built here; the message says why and what to do."""


def _module(name: str, kind: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        raise JudgeUnavailableError(
            f"The `{kind}` judge is not installed (no module `{name}`); "
            f"choose another with `--judge {'llm' if kind == 'offline' else 'offline'}`"
        ) from None


def make_judge(kind: str, settings: Settings, models_dir: Path) -> Judge:
    """The judge of the given kind, configured from settings.

    Args:
        kind: `offline` or `llm`.
        settings: Process settings; the LLM judge reads `settings.llm`.
        models_dir: Folder for model files the offline judge unpacks or caches.

    Raises:
        JudgeUnavailableError: Unknown kind, a judge module that is missing, or an LLM judge
            with no endpoint configured.
    """
    if kind == "offline":
        offline = _module("evaluators.offline", kind)
        # levels learnt from human labels (`coachloop eval --calibrate-on`) live there
        judge: Judge = offline.OfflineJudge(models_dir=models_dir)
        return judge
    if kind == "llm":
        if not settings.llm_enabled:
            raise JudgeUnavailableError(
                "The `llm` judge needs an endpoint; set COACHLOOP_LLM__BASE_URL (and "
                "COACHLOOP_LLM__API_KEY if it needs one), or use `--judge offline`"
            )
        llm = _module("evaluators.llm", kind)
        judge = llm.LlmJudge(settings.llm)
        return judge
    known = ", ".join(JUDGE_KINDS)
    raise JudgeUnavailableError(f"No judge kind `{kind}`; choose one of: {known}")
