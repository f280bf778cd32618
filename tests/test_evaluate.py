import json

import numpy as np
import pandas as pd
import pytest

from conftest import FIXTURES
from pipeline.evaluate import GoldError, confusion_svg, expected_calibration_error, load_gold, run, score

THEME_CATEGORY = {"budsjettsystemet": "rammebetingelser", "siloer": "samhandling"}


def test_score_counts_also_themes_emergent_and_junk():
    gold = pd.DataFrame({"card_id": ["a", "b", "c", "d", "e"],
                         "category_id": ["rammebetingelser", "samhandling", "emergent", "emergent", "junk"],
                         "theme_id": ["budsjettsystemet", "siloer", "emergent:ki", "emergent:ki", ""],
                         "also": ["", "budsjettsystemet", "", "", ""]})
    card_map = pd.DataFrame({"card_id": ["a", "b", "c", "d", "e"],
                             "status": ["assigned", "assigned", "assigned", "outlier", "rejected"],
                             "category_id": ["rammebetingelser", "rammebetingelser", "emergent", "samhandling", None],
                             "taxonomy_theme_id": ["budsjettsystemet", "budsjettsystemet", None, "siloer", None],
                             "confidence": [0.9, 0.6, 0.8, 0.7, None]})
    assignments = pd.DataFrame({"card_id": ["a", "b", "c", "d"], "cluster": [0, 0, 1, -1]})
    metrics = score(card_map, assignments, gold, THEME_CATEGORY)
    assert metrics["cards"] == 4
    assert metrics["category_accuracy"] == 0.5
    assert metrics["category_accuracy_with_also"] == 0.75  # b's secondary theme is the budget
    assert (metrics["emergent_precision"], metrics["emergent_recall"]) == (1.0, 0.5)
    assert metrics["junk_rejected"] == "1/1"
    # one card per bin: a (0.9) and c (0.8) right, b (0.6) and d (0.7) wrong
    assert metrics["confidence_ece"] == pytest.approx((0.1 + 0.6 + 0.2 + 0.7) / 4)
    assert sum(map(sum, metrics["confusion"]["matrix"])) == 4


def test_calibration_error_is_the_weighted_gap_between_confidence_and_accuracy():
    confidence = np.array([0.95, 0.95, 0.55, 0.55])
    # top bin: right 2 of 2 at 0.95 (gap 0.05); 0.5 bin: right 1 of 2 at 0.55 (gap 0.05)
    assert expected_calibration_error(confidence, np.array([True, True, True, False])) == pytest.approx(0.05)
    assert expected_calibration_error(confidence, np.array([False, False, True, True])) == pytest.approx(0.7)
    assert expected_calibration_error(np.array([1.0]), np.array([True])) == 0.0  # 1.0 falls in the top bin
    assert expected_calibration_error(np.array([]), np.array([], dtype=bool)) == 0.0


def test_gold_without_a_theme_column_is_named(tmp_path):
    path = tmp_path / "gold.csv"
    path.write_text("card_id,category_id\na,x\n", encoding="utf-8")
    with pytest.raises(GoldError, match="gold.csv, row 1, column 'theme_id'"):
        load_gold(path)


def test_confusion_plot_is_an_escaped_svg():
    svg = confusion_svg({"labels": ["<a>", "b"], "matrix": [[1, 0], [2, 3]]}, "t")
    assert svg.startswith("<svg") and "&lt;a&gt;" in svg and "<a>" not in svg


@pytest.mark.slow
def test_evaluate_scores_a_real_run_zero_shot_and_by_workshop(tmp_path):
    from pipeline.cli import run_all
    from pipeline.params import load_params

    params = load_params("configs/params.yaml")
    run_all(inputs=[FIXTURES / "small_corpus"], out=tmp_path / "run", params=params,
            taxonomy="configs/taxonomy.yaml", cache_dir=tmp_path / "cache")
    metrics = run(gold_path=FIXTURES / "small_corpus_gold.csv", run_dir=tmp_path / "run",
                  taxonomy_path="configs/taxonomy.yaml", codebook_path="configs/codebook.yaml",
                  cache_dir=tmp_path / "cache", out_dir=tmp_path / "eval", params=params)
    on_disk = json.loads((tmp_path / "eval" / "metrics.json").read_text(encoding="utf-8"))
    assert on_disk == metrics
    assert metrics["zero_shot"]["cards"] == 37 and metrics["zero_shot"]["junk_rejected"] == "2/2"
    assert metrics["cross_validated_by_workshop"]["folds"] == ["ws-alta", "ws-molde"]
    # The fixture's themes are plain; labels from the other workshop must not make things worse.
    assert metrics["zero_shot"]["category_accuracy"] >= 0.7
    assert metrics["cross_validated_by_workshop"]["category_accuracy"] >= metrics["zero_shot"]["category_accuracy"]
    assert (tmp_path / "eval" / "confusion_cross_validated.svg").read_text(encoding="utf-8").startswith("<svg")


def test_theme_scores_measure_purity_agreement_and_the_share_outside_every_theme():
    from pipeline.evaluate import theme_scores

    gold = pd.DataFrame({"card_id": list("abcdefg"), "category_id": ["x", "x", "y", "y", "y", "x", "junk"],
                         "theme_id": ["x1", "x2", "y1", "y1", "y1", "x1", ""], "also": ""})
    card_map = pd.DataFrame({"card_id": list("abcdefg"),
                             "status": ["assigned"] * 5 + ["outlier", "rejected"],
                             "theme_id": ["T", "T", "U", "U", "T", None, None],
                             "subtheme_id": ["s", None, None, None, None, None, None]})
    scores = theme_scores(card_map, gold)
    assert scores["cards"] == 6 and scores["outside_share"] == round(1 / 6, 4)
    top = scores["themes"]
    assert top["count"] == 2
    assert top["category_purity"] == round(4 / 5, 4)  # T: x, x, y -> 2 of 3; U: y, y -> 2 of 2
    assert top["theme_purity"] == round(3 / 5, 4)
    assert scores["leaves"]["count"] == 3
    assert -1 <= top["ari"] <= 1 and -1 <= top["ami"] <= 1


def test_gold_for_another_corpus_is_an_error_or_with_skip_unmatched_null_metrics(tmp_path):
    """dvc.yaml passes --skip-unmatched: pointing ingest at another corpus keeps `dvc repro` green."""
    from conftest import normalised_cards
    from pipeline.params import Params
    from pipeline.records import NORMALISED, write_table

    write_table(normalised_cards(["Vi må dele data"], ids=["other-1"]), NORMALISED,
                tmp_path / "run" / "normalise" / "cards.parquet")
    args = dict(gold_path=FIXTURES / "small_corpus_gold.csv", run_dir=tmp_path / "run",
                taxonomy_path="configs/taxonomy.yaml", codebook_path="configs/codebook.yaml",
                cache_dir=tmp_path / "cache", out_dir=tmp_path / "eval", params=Params())
    metrics = run(**args, skip_unmatched=True)
    assert metrics["zero_shot"] is None and metrics["cross_validated_by_workshop"] is None
    assert "small_corpus_gold.csv is in the run" in metrics["skipped"]
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text(encoding="utf-8")) == metrics
    for name in ("confusion_zero_shot.svg", "confusion_cross_validated.svg"):
        assert "No gold labels" in (tmp_path / "eval" / name).read_text(encoding="utf-8")


def test_evaluate_command_says_it_skipped(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from conftest import normalised_cards
    from pipeline.cli import app
    from pipeline.records import NORMALISED, write_table

    write_table(normalised_cards(["Vi må dele data"], ids=["other-1"]), NORMALISED,
                tmp_path / "normalise" / "cards.parquet")
    result = CliRunner().invoke(app, ["evaluate", "--gold", str(FIXTURES / "small_corpus_gold.csv"), "--run-dir",
                                      str(tmp_path), "--out", str(tmp_path / "eval"), "--skip-unmatched"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text(encoding="utf-8"))["zero_shot"] is None


@pytest.mark.slow
def test_a_tuned_encoder_is_tuned_per_fold_without_the_held_out_workshops_labels(tmp_path, monkeypatch):
    from pipeline import evaluate as evaluate_stage
    from pipeline.cli import run_all
    from pipeline.encoder import bundled_model_path
    from pipeline.params import load_params
    from pipeline.records import NORMALISED, read_table
    from pipeline.taxonomy import load_codebook, load_taxonomy
    from pipeline.tune import training_groups

    params = load_params("configs/params.yaml")
    run_all(inputs=[FIXTURES / "small_corpus"], out=tmp_path / "run", params=params,
            taxonomy="configs/taxonomy.yaml", cache_dir=tmp_path / "cache")
    seen = []

    def tuned_on(groups, tune_params, cache_dir):
        # Records what each evaluation tunes on; the engine then runs the bundled model, a valid tuned-format
        # file (real tuning is tested in test_tune.py): this test is about which labels reach the tuning.
        seen.append(groups)
        return bundled_model_path(), {}

    monkeypatch.setattr(evaluate_stage, "tuned_model_file", tuned_on)
    tuned = params.model_copy(update={"embed": params.embed.model_copy(update={"backend": "e5-small-q4:models/encoder"})})
    metrics = run(gold_path=FIXTURES / "small_corpus_gold.csv", run_dir=tmp_path / "run",
                  taxonomy_path="configs/taxonomy.yaml", codebook_path="configs/codebook.yaml",
                  cache_dir=tmp_path / "cache", out_dir=tmp_path / "eval", params=tuned, tune_per_fold=True)
    folds = metrics["cross_validated_by_workshop"]["folds"]
    assert metrics["encoder"] == "tuned per fold" and len(seen) == 1 + len(folds)
    taxonomy = load_taxonomy("configs/taxonomy.yaml")
    assert seen[0] == training_groups(taxonomy, load_codebook("configs/codebook.yaml", taxonomy))  # zero-shot
    cards = read_table(tmp_path / "run" / "normalise" / "cards.parquet", NORMALISED)
    gold = pd.read_csv(FIXTURES / "small_corpus_gold.csv", dtype=str, keep_default_na=False)
    labelled = cards[cards["card_id"].isin(gold.loc[gold["category_id"] != "junk", "card_id"])]
    for workshop, groups in zip(folds, seen[1:]):
        trained = {text for texts in groups.values() for text in texts}
        own = set(labelled.loc[labelled["workshop_id"] == workshop, "text_norm"])
        others = set(labelled.loc[labelled["workshop_id"] != workshop, "text_norm"])
        assert not (own - others) & trained, f"fold {workshop}: its own labelled cards were trained on"
        assert others <= trained  # the other workshops' labels were

    # By default one encoder, tuned on the taxonomy and codebook only, serves zero-shot and every fold.
    seen.clear()
    metrics = run(gold_path=FIXTURES / "small_corpus_gold.csv", run_dir=tmp_path / "run",
                  taxonomy_path="configs/taxonomy.yaml", codebook_path="configs/codebook.yaml",
                  cache_dir=tmp_path / "cache", out_dir=tmp_path / "eval2", params=tuned)
    assert metrics["encoder"] == "tuned on the taxonomy and codebook"
    assert seen == [training_groups(taxonomy, load_codebook("configs/codebook.yaml", taxonomy))]


def test_agreement_is_cohens_kappa_and_krippendorffs_alpha_of_machine_and_gold():
    from sklearn.metrics import cohen_kappa_score

    from pipeline.evaluate import agreement

    gold = ["a", "a", "b", "b", "c", "c", "a", "b"]
    machine = ["a", "b", "b", "b", "c", "a", "a", "b"]
    result = agreement([f"k{i}" for i in range(8)], gold, machine)
    assert result["cohen_kappa"] == pytest.approx(cohen_kappa_score(gold, machine), abs=1e-4)
    # Krippendorff's alpha, nominal, two coders, no missing values: 1 - (n - 1) * D_o / D_e over pairable values
    values = gold + machine
    n = len(values)
    observed = sum(g != m for g, m in zip(gold, machine)) * 2 / n
    counts = {v: values.count(v) for v in set(values)}
    expected = (n * n - sum(c * c for c in counts.values())) / (n * (n - 1))
    assert result["krippendorff_alpha"] == pytest.approx(1 - observed / expected, abs=1e-4)
    assert agreement(["x", "y"], ["a", "b"], ["a", "b"]) == {"cohen_kappa": 1.0, "krippendorff_alpha": 1.0}
    assert agreement([], [], []) == {"cohen_kappa": None, "krippendorff_alpha": None}
