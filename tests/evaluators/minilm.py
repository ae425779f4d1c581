"""One sentence encoder per test process: loading the ONNX model takes a moment."""

from __future__ import annotations

from functools import lru_cache

from evaluators.embeddings import SentenceEncoder


@lru_cache(maxsize=1)
def shared_encoder() -> SentenceEncoder:
    return SentenceEncoder()
