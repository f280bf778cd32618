"""Tests for pipeline.params: strict schema for configs/params.yaml and its digest."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.params import Params, ParamsError, load_params

REPO_PARAMS = Path(__file__).resolve().parents[1] / "configs" / "params.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_load_without_a_file():
    params = Params()

    assert params.ingest.min_letters == 2
    assert "se baksiden" in params.ingest.junk_phrases
    assert params.normalise.repair_letters is True
    assert params.embed.backend == "e5-small-q4"
    assert params.cluster.hdbscan.min_cluster_size == 5
    assert params.cluster.umap.n_neighbors == 10
    assert params.report.quotes_per_theme == 4


def test_empty_file_gives_the_defaults(tmp_path):
    assert load_params(write(tmp_path, "")) == Params()


def test_partial_file_overrides_only_what_it_names(tmp_path):
    params = load_params(write(tmp_path, "cluster:\n  umap: {n_neighbors: 30}\n"))

    assert params.cluster.umap.n_neighbors == 30
    assert params.cluster.umap.n_components == Params().cluster.umap.n_components
    assert params.ingest == Params().ingest


def test_repo_params_file_loads():
    params = load_params(REPO_PARAMS)

    assert isinstance(params, Params)
    assert params.cluster.algorithm in {"auto", "hdbscan", "agglomerative"}


@pytest.mark.parametrize(
    "text, key",
    [
        ("foo: 1\n", "foo"),
        ("ingest:\n  min_leters: 3\n", "ingest.min_leters"),
        ("cluster:\n  umap:\n    foo: 1\n", "cluster.umap.foo"),
    ],
    ids=["top-level", "section", "nested"],
)
def test_unknown_key_raises_naming_the_key(tmp_path, text, key):
    path = write(tmp_path, text)

    with pytest.raises(ParamsError) as info:
        load_params(path)

    assert f"{key}=" in str(info.value)
    assert str(path) in str(info.value)


def test_out_of_range_value_raises_naming_key_and_value(tmp_path):
    with pytest.raises(ParamsError) as info:
        load_params(write(tmp_path, "cluster:\n  hdbscan:\n    min_cluster_size: 1\n"))

    assert "cluster.hdbscan.min_cluster_size=1" in str(info.value)


def test_wrong_type_raises_naming_key_and_value(tmp_path):
    with pytest.raises(ParamsError, match=r"normalise\.min_repair_zipf='high'"):
        load_params(write(tmp_path, "normalise:\n  min_repair_zipf: high\n"))


def test_unknown_choice_raises_naming_key_and_value(tmp_path):
    with pytest.raises(ParamsError, match=r"cluster\.algorithm='kmeans'"):
        load_params(write(tmp_path, "cluster:\n  algorithm: kmeans\n"))


@pytest.mark.parametrize("backend", ["bogus", "openai:text-embedding-3", "sentence-transformers:", "e5-small-q4:"])
def test_bad_embed_backend_raises_naming_it(tmp_path, backend):
    with pytest.raises(ParamsError) as info:
        load_params(write(tmp_path, f"embed:\n  backend: '{backend}'\n"))

    assert f"embed.backend={backend!r}" in str(info.value)


def test_sentence_transformers_backend_with_a_model_is_accepted(tmp_path):
    params = load_params(write(tmp_path, "embed:\n  backend: 'sentence-transformers:/models/minilm'\n"))

    assert params.embed.backend == "sentence-transformers:/models/minilm"


@pytest.mark.parametrize("text", ["- ingest\n", "ingest: [\n"], ids=["not-a-mapping", "invalid-yaml"])
def test_unreadable_file_raises_params_error_naming_the_file(tmp_path, text):
    path = write(tmp_path, text)

    with pytest.raises(ParamsError, match=str(path)):
        load_params(path)


def test_missing_file_raises_params_error(tmp_path):
    with pytest.raises(ParamsError, match="cannot read params"):
        load_params(tmp_path / "finnes-ikke.yaml")


def test_params_are_frozen():
    with pytest.raises(Exception):
        Params().cluster.seed = 1  # type: ignore[misc]


def test_digest_is_stable_and_independent_of_key_order(tmp_path):
    a = load_params(write(tmp_path, "cluster:\n  seed: 7\n  center: false\nmap: {temperature: 0.1}\n"))
    b = Params(map={"temperature": 0.1}, cluster={"center": False, "seed": 7})

    assert a.digest() == b.digest() == a.digest()
    assert len(a.digest()) == 64 and int(a.digest(), 16) >= 0
    assert Params().digest() == Params().digest()


@pytest.mark.parametrize(
    "change",
    [
        {"cluster": {"seed": 43}},
        {"cluster": {"hdbscan": {"min_cluster_size": 6}}},
        {"ingest": {"junk_phrases": ["snu"]}},
        {"normalise": {"repair_letters": False}},
    ],
)
def test_digest_changes_when_a_value_changes(change):
    assert Params(**change).digest() != Params().digest()


# --- one source for every default ---------------------------------------------------------------


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_every_default_equals_configs_params_yaml_key_for_key():
    import yaml

    written = _flatten(yaml.safe_load(REPO_PARAMS.read_text(encoding="utf-8")))
    defaults = _flatten(Params().model_dump(mode="json"))
    assert sorted(written) == sorted(defaults), "configs/params.yaml and Params() name different keys"
    assert {k: v for k, v in written.items() if defaults[k] != v} == {}


def test_the_readme_params_table_is_generated_from_the_schema():
    from pipeline.params import params_markdown

    readme = (REPO_PARAMS.parents[1] / "README.md").read_text(encoding="utf-8")
    assert params_markdown() in readme, "README params table is stale: paste `innsikt params --markdown` over it"


def test_every_param_has_a_description():
    from pipeline.params import leaf_fields

    assert [key for key, field in leaf_fields() if not field.description] == []


def test_no_function_repeats_a_param_default_as_a_literal():
    """A library function taking a param on its own defaults to `DEFAULTS.<section>.<key>` (or takes
    it without a default): a literal copy drifts (cluster's 0.75 against the params' 0.8 did)."""
    import ast

    from pipeline.params import leaf_fields

    names = {key.rsplit(".", 1)[-1] for key, _ in leaf_fields()}
    # Same name, another meaning: threads of one backend object (the param's 0 means one per core);
    # the tune stage's batch of texts for its frozen layers, not a batch of pairs.
    allowed = {("embed", "__init__", "workers"), ("embed", "make_backend", "workers"),
               ("tune", "_frozen_states", "batch_size"),
               # `kind` of an error or a memo, not where the engine runs
               ("ingest", "__init__", "kind"), ("memo", "__init__", "kind")}
    literal = []
    for path in sorted((REPO_PARAMS.parents[1] / "pipeline").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            positional = node.args.posonlyargs + node.args.args
            pairs = list(zip(positional[len(positional) - len(node.args.defaults):], node.args.defaults))
            pairs += [(a, d) for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults) if d is not None]
            for arg, default in pairs:
                if arg.arg in names and isinstance(default, ast.Constant) and default.value is not None \
                        and (path.stem, node.name, arg.arg) not in allowed:
                    literal.append(f"{path.stem}.{node.name}({arg.arg}={default.value!r})")
    assert literal == []
