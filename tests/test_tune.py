"""The tune stage: training texts, pair draws, and real (short) fine-tuning runs of the converted encoder."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.params import TuneParams
from pipeline.taxonomy import load_codebook, load_taxonomy
from pipeline.tune import TuneError, pair_batches, training_groups, tuned_model_file

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def taxonomy():
    return load_taxonomy(ROOT / "configs" / "taxonomy.yaml")


@pytest.fixture(scope="module")
def codebook(taxonomy):
    return load_codebook(ROOT / "configs" / "codebook.yaml", taxonomy)


def test_groups_hold_names_statements_paraphrases_and_labelled_cards(taxonomy, codebook):
    labelled = pd.DataFrame({"theme_id": ["siloer", "emergent:klima", "emergent:klima"],
                             "text": ["Etatene snakker ikke sammen", "Mer grønn energi", "Kutt utslippene"]})
    groups = training_groups(taxonomy, codebook, labelled)
    siloer = groups["siloer"]
    assert "Siloer" in siloer and taxonomy.theme("siloer").statements[0] in siloer
    assert set(codebook.phrases["siloer"]) <= set(siloer) and "Etatene snakker ikke sammen" in siloer
    assert groups["emergent:klima"] == ["Mer grønn energi", "Kutt utslippene"]
    assert set(groups) == {t.id for t in taxonomy.themes} | {"emergent:klima"}
    assert all(len(texts) == len(set(texts)) for texts in groups.values())


def test_pairs_come_from_one_group_and_batches_from_different_groups(taxonomy, codebook):
    groups = training_groups(taxonomy, codebook)
    group_of = {text: g for g, texts in groups.items() for text in texts}
    batches = pair_batches(groups, steps=20, batch_size=8, seed=1)
    assert len(batches) == 20 and all(len(b) == 8 for b in batches)
    for batch in batches:
        assert all(a != b and group_of[a] == group_of[b] for a, b in batch)
        assert len({group_of[a] for a, _ in batch}) == len(batch)  # no false in-batch negatives
    assert pair_batches(groups, 20, 8, seed=1) == batches
    assert pair_batches(groups, 20, 8, seed=2) != batches


def test_too_few_groups_is_an_error_naming_tune():
    with pytest.raises(TuneError, match="tune"):
        pair_batches({"a": ["x", "y"], "b": ["z"]}, steps=1, batch_size=4, seed=0)


@pytest.mark.slow
def test_two_tune_runs_give_the_same_model_and_vectors_and_the_engine_runs_it(taxonomy, codebook, tmp_path):
    from pipeline.embed import E5SmallQ4

    groups = training_groups(taxonomy, codebook)
    params = TuneParams(steps=4, batch_size=8, frozen_layers=8)
    first, metrics = tuned_model_file(groups, params, tmp_path)
    kept = first.read_bytes()
    first.unlink()  # tuned again from scratch (the converted base model is reused)
    second, _ = tuned_model_file(groups, params, tmp_path)
    assert second.read_bytes() == kept
    assert metrics["steps"] == 4 and metrics["loss_last"] is not None

    texts = ["Etatene jobber i hver sin silo", "Budsjettet er ettårig", "Vi må tørre å feile"]
    tuned, base = E5SmallQ4(model=str(second)), E5SmallQ4()
    vectors = tuned.encode(texts)
    np.testing.assert_array_equal(vectors, E5SmallQ4(model=str(second)).encode(texts))  # a fresh engine agrees
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    assert tuned.model_id != base.model_id and "e5-q4-" in tuned.model_id
    assert not np.array_equal(vectors, base.encode(texts))  # the weights moved


def test_tuned_backend_names_a_missing_model(tmp_path):
    from pipeline.embed import make_backend

    with pytest.raises(FileNotFoundError, match="embed.backend='e5-small-q4:"):
        make_backend(f"e5-small-q4:{tmp_path}").model_id


def test_the_stage_is_off_by_default_and_then_writes_only_its_metrics(tmp_path):
    from pipeline.params import TuneParams
    from pipeline.tune import run

    metrics = run(taxonomy_path="configs/taxonomy.yaml", codebook_path="configs/codebook.yaml",
                  out_dir=tmp_path / "encoder", cache_dir=tmp_path / "cache", params=TuneParams())
    assert metrics["enabled"] is False and metrics["model"] is None
    assert sorted(p.name for p in (tmp_path / "encoder").iterdir()) == ["metrics.json"]
