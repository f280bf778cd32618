import copy
import json
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.params import Params
from pipeline.report import (
    SCHEMA_VERSION,
    ReportError,
    build_insights,
    check_conservation,
    choose_quotes,
    report_metrics,
    tally_votes,
    vote_split,
)
from pipeline.report_plots import write_plots
from pipeline.report_render import validate_insights
from pipeline.report_vectors import centred_unit_vectors, mmr_order, project_2d
from pipeline.taxonomy import load_taxonomy

TAXONOMY = load_taxonomy("configs/taxonomy.yaml")
REDACTIONS = {"telefon": 1, "e-post": 0, "fødselsnummer": 0}
INPUTS = [{"path": "corpora/x/w1.csv", "sha256": "0" * 64, "kind": "cards", "rows": 5}]


def frames():
    cards = pd.DataFrame(
        {
            "card_id": ["a", "b", "c", "d", "e"],
            "workshop_id": ["w1", "w1", "w2", "w2", "w2"],
            "group_id": ["g1", None, "g1", "g2", None],
            "card_type": ["postit", "wish", "postit", "postit", "other"],
            "text": ["Ettårige budsjetter", "Ettårige budsjetter!", "Silo <script>alert(1)</script>", "KI", ""],
            "source_file": "w.csv",
            "source_row": [2, 3, 4, 5, 6],
            "metadata": "{}",
            "status": ["ok", "ok", "ok", "ok", "rejected"],
            "reason": [None, None, None, None, "empty card"],
            "text_norm": ["Ettårige budsjetter", "Ettårige budsjetter!", "Silo <script>alert(1)</script>", "KI", ""],
            "language": ["nb", "nb", "nb", "en", "und"],
            "language_confidence": [0.9, 0.9, 0.8, 0.7, 0.0],
            "duplicate_of": [None, "a", None, None, None],
            "duplicate_kind": [None, "exact", None, None, None],
        }
    )
    card_map = pd.DataFrame(
        {
            "card_id": ["a", "b", "c", "d", "e"],
            "status": ["assigned", "assigned", "assigned", "outlier", "rejected"],
            "theme_id": ["t1", "t1", "t1", None, None],
            "category_id": ["rammebetingelser", "rammebetingelser", "samhandling", "emergent", None],
            "taxonomy_theme_id": ["budsjettsystemet", "budsjettsystemet", "siloer", None, None],
            "confidence": [0.9, 0.8, 0.4, 0.7, None],
            "centrality": [0.9, 0.95, 0.5, 0.0, None],
        }
    )
    themes = pd.DataFrame(
        {"theme_id": ["t1"], "cluster": [0], "label": ["budsjett, ettårig"], "keywords": [["budsjett", "ettårig"]],
         "category_id": ["rammebetingelser"], "taxonomy_theme_id": ["budsjettsystemet"], "emergent": [False],
         "confidence": [0.8], "size": [3]}
    )
    votes = pd.DataFrame(
        {"workshop_id": ["w1", "w1", "w2"], "group_id": ["g1", "g2", "g1"],
         "theme_id": ["regelverk", "regelverk", "siloer"], "choice": ["1", "2", "agree"],
         "source_file": "votes.csv", "source_row": [2, 3, 4]}
    )
    return cards, card_map, themes, votes


def embeddings(ids=("a", "b", "c", "d")):
    """One vector per card that is not rejected, as the embed stage writes them."""
    vectors = {"a": [1.0, 0.1, 0.0], "b": [1.0, 0.12, 0.0], "c": [0.2, 1.0, 0.1], "d": [0.0, 0.1, 1.0]}
    return pd.DataFrame({"card_id": list(ids), "embedding": [vectors[i] for i in ids]})


def build(**changes):
    cards, card_map, themes, votes = frames()
    inputs = dict(cards=cards, card_map=card_map, themes=themes, votes=votes, embeddings=embeddings(),
                  inputs=INPUTS, redactions=REDACTIONS, taxonomy=TAXONOMY, params=Params())
    return build_insights(**(inputs | changes))


def test_insights_validate_against_the_schema_and_conserve_cards():
    insights = build()
    validate_insights(insights)
    check_conservation(insights, frames()[0])
    assert insights["run"]["counts"] == {"cards": 5, "assigned": 3, "outlier": 1, "rejected": 1, "votes": 3}
    assert [c["card_id"] for c in insights["cards"]] == ["a", "b", "c", "d", "e"]


def test_a_document_missing_a_required_field_fails_validation():
    insights = build()
    del insights["themes"][0]["label"]
    with pytest.raises(jsonschema.ValidationError):
        validate_insights(insights)


def test_conservation_check_catches_a_lost_card():
    insights = build()
    insights["cards"].pop()
    with pytest.raises(ReportError, match="missing \\['e'\\]"):
        check_conservation(insights, frames()[0])


def members_of(theme_id="t1"):
    cards, card_map, *_ = frames()
    return cards.merge(card_map, on="card_id", suffixes=("_ingest", "")).query("theme_id == @theme_id")


def test_quotes_never_repeat_a_duplicate_group():
    vectors = centred_unit_vectors(embeddings(), "abcd")
    quotes = choose_quotes(members_of(), vectors, 4)
    ids = [q["card_id"] for q in quotes]
    assert len(ids) == 2 and "c" in ids and len({"a", "b"} & set(ids)) == 1  # "b" duplicates "a"
    quote_c = next(q for q in quotes if q["card_id"] == "c")
    assert quote_c == {"card_id": "c", "workshop_id": "w2", "card_type": "postit",
                       "text": "Silo <script>alert(1)</script>"}


def test_quotes_skip_rejected_cards():
    members = members_of().assign(status=["assigned", "assigned", "rejected"])
    vectors = centred_unit_vectors(embeddings(), "abcd")
    assert "c" not in [q["card_id"] for q in choose_quotes(members, vectors, 4)]


def test_mmr_picks_a_diverse_second_quote_over_a_near_copy_of_the_first():
    # Three paraphrases of one point (x1-x3, cosine 0.85 to each other) and one card making
    # another point of the theme (y, cosine 0.5 to x1).
    vectors = {"x1": np.array([1.0, 0.0, 0.0]), "x2": np.array([0.85, 0.527, 0.0]),
               "x3": np.array([0.85, -0.527, 0.0]), "y": np.array([0.5, 0.0, 0.866])}
    vectors = {k: v / np.linalg.norm(v) for k, v in vectors.items()}
    assert mmr_order(list(vectors), vectors, 2, {}, lam=1.0) == ["x1", "x2"]  # centrality alone: same point twice
    assert mmr_order(list(vectors), vectors, 2, {}) == ["x1", "y"]


def test_mmr_breaks_ties_by_card_id_and_ignores_input_order():
    same = np.array([1.0, 0.0])
    vectors = {"k2": same, "k1": same, "k3": same}
    assert mmr_order(["k3", "k2", "k1"], vectors, 1, {}) == ["k1"]
    assert mmr_order(["k3", "k1", "k2"], vectors, 3, {"k2": "k1"}) == ["k1", "k3"]  # k2 shares k1's group


def test_map_positions_are_deterministic_rounded_and_absent_for_rejected_cards():
    by_id = {c["card_id"]: c for c in build()["cards"]}
    assert by_id["e"]["position"] is None
    for card_id in "abcd":
        x, y = by_id[card_id]["position"]["x"], by_id[card_id]["position"]["y"]
        assert round(x, 4) == x and round(y, 4) == y
    shuffled = build(embeddings=embeddings(ids=("d", "b", "c", "a")))
    assert shuffled["cards"] == build()["cards"]
    assert by_id["a"]["position"] != by_id["d"]["position"]


def test_pca_sign_is_fixed():
    rng = np.random.default_rng(3)
    vectors = {f"c{i}": v for i, v in enumerate(rng.standard_normal((20, 8)))}
    first = project_2d(vectors)
    assert project_2d(dict(reversed(list(vectors.items())))) == first
    assert project_2d({"only": np.ones(8)}) == {"only": (0.0, 0.0)}


def test_a_live_card_without_an_embedding_is_an_error():
    with pytest.raises(ReportError, match="without an embedding.*'d'"):
        build(embeddings=embeddings(ids=("a", "b", "c")))


def test_rejected_cards_keep_their_reason_and_are_in_no_theme():
    card = {c["card_id"]: c for c in build()["cards"]}["e"]
    assert card["status"] == "rejected" and card["reason"] == "empty card" and card["theme_id"] is None


def test_vote_tallies_per_statement():
    tallies = {t["taxonomy_theme_id"]: t for t in tally_votes(frames()[3], TAXONOMY)}
    assert [s["count"] for s in tallies["regelverk"]["statements"]] == [1, 1]
    assert [s["per_workshop"] for s in tallies["regelverk"]["statements"]] == [{"w1": 1}, {"w1": 1}]
    assert tallies["regelverk"]["groups"] == 2
    assert tallies["regelverk"]["split"]["label"] == "even"
    assert {s["choice"]: s["count"] for s in tallies["siloer"]["statements"]} == {"agree": 1, "disagree": 0}
    assert tallies["siloer"]["split"] == {"label": "unanimous", "leading_choice": "agree", "majority_share": 1.0,
                                          "text": "enstemmig"}


@pytest.mark.parametrize(
    "counts, label, leading, share, text",
    [
        ([5, 0], "unanimous", "1", 1.0, "enstemmig"),
        ([0, 3], "unanimous", "2", 1.0, "enstemmig"),
        ([4, 4], "even", None, 0.5, "delt på midten"),
        ([2, 1], "majority", "1", 0.6667, "2/3 mot 1/3"),
        ([6, 2], "majority", "1", 0.75, "3/4 mot 1/4"),
        ([4, 6], "majority", "2", 0.6, "3/5 mot 2/5"),
        ([7, 5], "majority", "1", 0.5833, "58 % mot 42 %"),
        ([5, 3], "majority", "1", 0.625, "63 % mot 37 %"),  # half rounds up
        ([11, 2], "majority", "1", 0.8462, "85 % mot 15 %"),
    ],
)
def test_vote_split_in_words_and_numbers(counts, label, leading, share, text):
    assert vote_split(counts, ["1", "2"]) == {"label": label, "leading_choice": leading, "majority_share": share,
                                              "text": text}


def test_breadth_counts_workshops_and_groups_and_ranks_themes():
    theme = build()["themes"][0]
    # a (w1, g1), b (w1, no group), c (w2, g1): two workshops, two groups, relevant for many.
    assert theme["breadth"] == {"workshops": 2, "groups": 2, "rank": 1, "relevant_for_many": True}


def test_breadth_rank_orders_by_workshops_then_groups_then_voices():
    cards, card_map, themes, votes = frames()
    card_map.loc[card_map["card_id"] == "c", "theme_id"] = "t2"
    themes = pd.concat([themes, themes.assign(theme_id="t2", label="siloer", size=1)], ignore_index=True)
    insights = build(card_map=card_map, themes=themes)
    ranks = {t["theme_id"]: t["breadth"] for t in insights["themes"]}
    assert ranks["t1"]["workshops"] == 1 and ranks["t2"]["workshops"] == 1
    assert ranks["t1"]["rank"] == 1 and ranks["t2"]["rank"] == 2  # t1: 1 group, 2 voices; t2: 1 group, 1 voice
    assert not ranks["t1"]["relevant_for_many"]


def test_metrics_summarise_the_run():
    metrics = report_metrics(build())
    assert metrics["cards"] == 5 and metrics["themes"] == 1 and metrics["assigned_share"] == 0.75
    assert metrics["relevant_for_many"] == 1 and metrics["emergent_themes"] == 0


def test_votes_for_an_unknown_theme_name_file_row_and_column():
    votes = frames()[3]
    votes.loc[1, "theme_id"] = "no-such-theme"
    with pytest.raises(ReportError, match="votes.csv, row 3, column 'theme_id'"):
        tally_votes(votes, TAXONOMY)


def test_invalid_choice_is_named():
    votes = frames()[3]
    votes.loc[2, "choice"] = "maybe"
    with pytest.raises(ReportError, match="row 4, column 'choice'"):
        tally_votes(votes, TAXONOMY)


def test_same_input_gives_byte_identical_json():
    assert json.dumps(build(), ensure_ascii=False) == json.dumps(build(), ensure_ascii=False)


def test_emergent_category_appears_when_cards_are_emergent():
    categories = [c["category_id"] for c in build()["categories"]]
    assert categories[-1] == "emergent" and len(categories) == 7


def test_voices_count_a_duplicate_group_once():
    theme = build()["themes"][0]
    assert theme["size"] == 3 and theme["voices"] == 2  # "b" repeats "a"


def test_redaction_counts_are_reported():
    assert build()["run"]["redactions"] == REDACTIONS


# --------------------------------------------------------------------------- the demo corpus


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from report_fixtures import demo_insights

    return demo_insights(tmp_path_factory.mktemp("demo"))


@pytest.mark.slow
def test_demo_corpus_insights_validate_against_the_schema(demo):
    validate_insights(demo)
    assert demo["schema_version"] == SCHEMA_VERSION
    assert demo["run"]["counts"]["cards"] == sum(w["cards"] for w in demo["workshops"]) > 0


@pytest.mark.slow
def test_demo_document_without_a_required_field_breaks_the_contract(demo):
    for path in (("votes", 0, "split"), ("themes", 0, "breadth"), ("cards", 0, "position"), ("run", "params_hash")):
        broken = copy.deepcopy(demo)
        parent = broken
        for key in path[:-1]:
            parent = parent[key]
        del parent[path[-1]]
        with pytest.raises(jsonschema.ValidationError, match=f"'{path[-1]}' is a required property"):
            validate_insights(broken)


@pytest.mark.slow
def test_demo_quotes_positions_and_ranks_are_consistent(demo):
    cards = {c["card_id"]: c for c in demo["cards"]}
    for theme in demo["themes"]:
        quoted = [cards[q["card_id"]] for q in theme["quotes"]]
        assert quoted and all(c["theme_id"] == theme["theme_id"] and c["status"] == "assigned" for c in quoted)
        assert all(q["text"] == cards[q["card_id"]]["text"] for q in theme["quotes"])
        groups = [c["duplicate_of"] or c["card_id"] for c in quoted]
        assert len(groups) == len(set(groups)), theme["theme_id"]
    assert sorted(t["breadth"]["rank"] for t in demo["themes"]) == list(range(1, len(demo["themes"]) + 1))
    assert all((c["position"] is None) == (c["status"] == "rejected") for c in demo["cards"])


# --------------------------------------------------------------------------- files beside insights.json


REPO = Path(__file__).resolve().parents[1]


def test_plots_are_written_as_png_svg_and_csv(tmp_path):
    write_plots(build(), tmp_path)
    for name in ("categories_by_workshop", "card_map"):
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        svg = (tmp_path / f"{name}.svg").read_text(encoding="utf-8")
        assert "<svg" in svg and "<script" not in svg
    categories = (tmp_path / "categories.csv").read_text(encoding="utf-8").splitlines()
    assert categories[0] == "category,workshop,cards" and "Samhandling,w2,1" in categories
    themes = (tmp_path / "themes.csv").read_text(encoding="utf-8").splitlines()
    assert themes == ["rank,theme,category,workshops,groups,voices,cards,relevant_for_many",
                      '1,"budsjett, ettårig",Rammebetingelser,2,2,2,3,true']


def test_plot_files_are_byte_identical_across_runs(tmp_path):
    write_plots(build(), tmp_path / "one")
    write_plots(build(), tmp_path / "two")
    for path in sorted((tmp_path / "one").iterdir()):
        assert path.read_bytes() == (tmp_path / "two" / path.name).read_bytes(), path.name


def test_dvc_declares_the_report_inputs_plots_metrics_and_an_offline_template():
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))
    report = spec["stages"]["report"]
    assert "outputs/embed/embeddings.parquet" in report["deps"]
    assert "--embeddings outputs/embed/embeddings.parquet" in report["cmd"]
    assert report["metrics"] == ["outputs/report/metrics.json"]
    assert set(report_metrics(build())) >= {"cards", "themes", "assigned_share", "relevant_for_many"}
    sources = []
    for plot in spec["plots"]:
        if isinstance(plot, str):
            sources.append(plot)
        else:
            (definition,) = plot.values()
            sources += list(definition["y"])
    report_sources = {s for s in sources if s.startswith("outputs/report/")}
    assert report_sources == {f"outputs/report/plots/{name}" for name in (
        "categories.csv", "themes.csv", "categories_by_workshop.svg", "card_map.svg")}
    template = (REPO / "configs" / "dvc_plots" / "offline.html").read_text(encoding="utf-8")
    # No {scripts} placeholder: that is where DVC would put its CDN <script src=...> tags.
    assert "{plot_divs}" in template and "{scripts}" not in template
    assert "http://" not in template and "https://" not in template and "src=" not in template
    config = (REPO / ".dvc" / "config").read_text(encoding="utf-8")
    assert "html_template = ../configs/dvc_plots/offline.html" in config
