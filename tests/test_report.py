import codecs
import copy
import csv
import io
import json
import re
from pathlib import Path
from xml.etree import ElementTree

import jsonschema
import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline import report
from pipeline.near_duplicates import duplicate_key
from pipeline.params import Params
from pipeline.records import (
    CARD_MAP,
    CLUSTER_TOPICS,
    CURATION,
    EMBEDDINGS,
    NORMALISED,
    THEME_CHANGES,
    THEMES,
    VOTES,
    SchemaError,
    write_table,
)
from pipeline.report import (
    SCHEMA_VERSION,
    THEME_COLUMNS,
    ReportError,
    build_insights,
    card_rows,
    check_conservation,
    choose_quotes,
    distinct_voices,
    quote_groups,
    read_changes,
    report_metrics,
    rows_by_theme,
    tally_votes,
    theme_breadth,
    vote_split,
)
from pipeline.report_plots import write_plots
from pipeline.report_render import render_html, render_markdown, validate_insights
from pipeline.report_vectors import centred_unit_vectors, mmr_order, project_2d
from pipeline.taxonomy import load_taxonomy

REPO = Path(__file__).resolve().parents[1]
TAXONOMY = load_taxonomy("configs/taxonomy.yaml")
REDACTIONS = {"telefon": 1, "e-post": 0, "fødselsnummer": 0}
REDACTIONS_BY_FIELD = {"text": REDACTIONS}
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
            "subtheme_id": [None] * 5,
        }
    )
    themes = pd.DataFrame(
        {"theme_id": ["t1"], "cluster": [0], "label": ["budsjett, ettårig"], "keywords": [["budsjett", "ettårig"]],
         "category_id": ["rammebetingelser"], "taxonomy_theme_id": ["budsjettsystemet"], "emergent": [False],
         "confidence": [0.8], "size": [3], "parent_id": [None]}
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


CHANGE_COLUMNS = ["theme_id", "label", "change", "size_before", "size_after", "merged_into", "split_from"]
FIRST_RUN = [("t1", "budsjett, ettårig", "new", 0, 3, None, [])]


def theme_changes(rows=FIRST_RUN) -> pd.DataFrame:
    """changes.parquet as the cluster stage writes it (records.THEME_CHANGES)."""
    return pd.DataFrame(rows, columns=CHANGE_COLUMNS)


def build(**overrides):
    cards, card_map, themes, votes = frames()
    inputs = dict(cards=cards, card_map=card_map, themes=themes, votes=votes, embeddings=embeddings(),
                  changes=theme_changes(), inputs=INPUTS, redactions=REDACTIONS,
                  redactions_by_field=REDACTIONS_BY_FIELD, taxonomy=TAXONOMY, params=Params())
    return build_insights(**(inputs | overrides))


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


def members_of(theme_id="t1", **columns):
    """A theme's cards as the per-theme functions take them; `columns` replaces columns."""
    cards, card_map, *_ = frames()
    members = cards.merge(card_map, on="card_id", suffixes=("_ingest", "")).query("theme_id == @theme_id")
    return card_rows(members.assign(**columns), THEME_COLUMNS)


def test_quotes_never_repeat_a_duplicate_group():
    vectors = centred_unit_vectors(embeddings(), "abcd")
    quotes = choose_quotes(members_of(), vectors, 4)
    ids = [q["card_id"] for q in quotes]
    assert len(ids) == 2 and "c" in ids and len({"a", "b"} & set(ids)) == 1  # "b" duplicates "a"
    quote_c = next(q for q in quotes if q["card_id"] == "c")
    assert quote_c == {"card_id": "c", "workshop_id": "w2", "card_type": "postit",
                       "text": "Silo <script>alert(1)</script>"}


def test_quotes_skip_rejected_cards():
    members = members_of(status=["assigned", "assigned", "rejected"])
    vectors = centred_unit_vectors(embeddings(), "abcd")
    assert "c" not in [q["card_id"] for q in choose_quotes(members, vectors, 4)]


# The per-theme functions as they were on DataFrames (a pandas filter per theme, 15 s at 10k
# cards): the reference the functions on card rows must agree with, card for card.
def dataframe_quote_groups(members: pd.DataFrame) -> dict:
    groups, by_text = {}, {}
    for card in members.sort_values("card_id").itertuples(index=False):
        root = report._none(card.duplicate_of) or card.card_id
        groups[card.card_id] = by_text.setdefault(duplicate_key(card.text_norm), root)
    return groups


def dataframe_quotes(members: pd.DataFrame, vectors: dict, n: int) -> list[dict]:
    live = members[members["status"] != "rejected"]
    chosen = mmr_order(live["card_id"].tolist(), vectors, n, dataframe_quote_groups(live))
    by_id = live.set_index("card_id")
    return [{"card_id": c, "workshop_id": by_id.at[c, "workshop_id"], "card_type": by_id.at[c, "card_type"],
             "text": by_id.at[c, "text_norm"]} for c in chosen]


def dataframe_breadth(members: pd.DataFrame) -> tuple[int, int, int]:
    """(workshops, groups, voices)."""
    grouped = members[members["group_id"].notna()]
    roots = members["duplicate_of"].where(members["duplicate_of"].notna(), members["card_id"])
    return (int(members["workshop_id"].nunique()),
            int(grouped[["workshop_id", "group_id"]].drop_duplicates().shape[0]), int(roots.nunique()))


def random_cards(seed: int, n: int = 80) -> pd.DataFrame:
    """Cards in shuffled order with shared groups, duplicates (marked and only textual), rejected cards."""
    rng = np.random.default_rng(seed)
    ids = [f"c{i:03d}" for i in rng.permutation(n)]
    texts = ["Mer samarbeid", "mer samarbeid!", "Ettårige budsjetter", "ETTÅRIGE budsjetter", "KI", "Tid å teste"]
    return pd.DataFrame({
        "card_id": ids,
        "workshop_id": [f"w{i}" for i in rng.integers(1, 5, n)],
        "group_id": [None if g == 0 else f"g{g}" for g in rng.integers(0, 4, n)],
        "card_type": rng.choice(["postit", "wish", "oracle"], n),
        "text_norm": [texts[i] for i in rng.integers(0, len(texts), n)],
        "status": rng.choice(["assigned", "assigned", "outlier", "rejected"], n),
        "duplicate_of": [ids[j] if j < i and rng.random() < 0.3 else None
                         for i, j in enumerate(rng.integers(0, n, n))],
        "theme_id": [None if t == 0 else f"t{t}" for t in rng.integers(0, 5, n)],
        "subtheme_id": None,
    })


@pytest.mark.parametrize("seed", range(5))
def test_theme_functions_on_card_rows_agree_with_the_dataframe_versions(seed):
    cards = random_cards(seed)
    rng = np.random.default_rng(seed)
    vectors = centred_unit_vectors(
        pd.DataFrame({"card_id": cards["card_id"], "embedding": list(rng.standard_normal((len(cards), 6)))}),
        cards["card_id"])
    members_of = rows_by_theme(card_rows(cards, THEME_COLUMNS))
    assert sorted(members_of) == sorted(cards["theme_id"].dropna().unique())
    for theme_id, frame in cards.groupby("theme_id"):
        members = members_of[theme_id]
        assert [m.card_id for m in members] == frame["card_id"].tolist()  # table order kept
        assert quote_groups(members) == dataframe_quote_groups(frame)
        assert choose_quotes(members, vectors, 3) == dataframe_quotes(frame, vectors, 3)
        breadth = theme_breadth(members, 4)
        assert (breadth["workshops"], breadth["groups"], distinct_voices(members)) == dataframe_breadth(frame)


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
    assert theme["breadth"] == {"workshops": 2, "groups": 2, "rank": 1, "relevant_for_many": True,
                                "distinctive_for": None}


def test_breadth_rank_orders_by_workshops_then_groups_then_voices():
    cards, card_map, themes, votes = frames()
    card_map.loc[card_map["card_id"] == "c", "theme_id"] = "t2"
    themes = pd.concat([themes, themes.assign(theme_id="t2", label="siloer", size=1)], ignore_index=True)
    insights = build(card_map=card_map, themes=themes,
                     changes=theme_changes(FIRST_RUN + [("t2", "siloer", "new", 0, 1, None, [])]))
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
    assert build()["run"]["redactions_by_field"] == REDACTIONS_BY_FIELD


# --------------------------------------------------------------------------- changes since the previous run


def two_themes():
    """Card c moves from t1 into a new theme t2, so the tests can have a new and a grown theme."""
    _, card_map, themes, _ = frames()
    card_map.loc[card_map["card_id"] == "c", "theme_id"] = "t2"
    themes = pd.concat([themes, themes.assign(theme_id="t2", label="siloer", size=1)], ignore_index=True)
    return card_map, themes


SECOND_RUN = [  # deliberately unsorted: the section sorts by kind, then id
    ("t8", "gammelt tema <b>borte</b>", "retired", 2, 0, None, []),
    ("t1", "budsjett, ettårig", "grown", 1, 2, None, []),
    ("t0", "digitalisering", "merged", 3, 0, "t1", []),
    ("t2", "siloer", "new", 0, 1, None, ["t7", "t0"]),
]


def test_a_first_run_has_only_new_themes_and_says_so():
    insights = build()
    assert insights["changes"] == {
        "since_previous_run": False,
        "counts": {"new": 1, "grown": 0, "shrunk": 0, "unchanged": 0, "merged": 0, "retired": 0},
        "themes": [{"theme_id": "t1", "label": "budsjett, ettårig", "change": "new", "size_before": 0,
                    "size_after": 3, "merged_into": None, "split_from": []}],
        "curation": [],
    }
    assert insights["themes"][0]["change"] == "new"
    validate_insights(insights)


def test_a_second_run_lists_new_grown_merged_and_retired_themes_in_order():
    card_map, themes = two_themes()
    insights = build(card_map=card_map, themes=themes, changes=theme_changes(SECOND_RUN))
    validate_insights(insights)
    changes = insights["changes"]
    assert changes["since_previous_run"] is True
    assert changes["counts"] == {"new": 1, "grown": 1, "shrunk": 0, "unchanged": 0, "merged": 1, "retired": 1}
    assert [(c["change"], c["theme_id"]) for c in changes["themes"]] == [
        ("new", "t2"), ("grown", "t1"), ("merged", "t0"), ("retired", "t8")]
    assert changes["themes"][0]["split_from"] == ["t0", "t7"]  # sorted
    assert changes["themes"][2] == {"theme_id": "t0", "label": "digitalisering", "change": "merged", "size_before": 3,
                                    "size_after": 0, "merged_into": "t1", "split_from": []}
    assert {t["theme_id"]: t["change"] for t in insights["themes"]} == {"t1": "grown", "t2": "new"}


def test_changes_are_byte_identical_whatever_the_row_order():
    card_map, themes = two_themes()
    first = build(card_map=card_map, themes=themes, changes=theme_changes(SECOND_RUN))
    again = build(card_map=card_map, themes=themes, changes=theme_changes(SECOND_RUN[::-1]))
    assert json.dumps(again, ensure_ascii=False) == json.dumps(first, ensure_ascii=False)


def test_a_new_theme_that_split_off_means_there_was_a_previous_run():
    changes = theme_changes([("t1", "budsjett, ettårig", "new", 0, 3, None, ["t0"])])
    assert build(changes=changes)["changes"]["since_previous_run"] is True


@pytest.mark.parametrize("rows, message", [
    ([], r"without a change row \['t1'\]"),
    (FIRST_RUN + [("t5", "x", "new", 0, 2, None, [])], r"change rows for unknown themes \['t5'\]"),
    (FIRST_RUN + [("t0", "x", "merged", 2, 0, "t5", [])], "'t0' merged into 't5', which is not a theme of this run"),
])
def test_changes_from_another_cluster_run_are_an_error(rows, message):
    with pytest.raises(ReportError, match=message):
        build(changes=theme_changes(rows))


def test_read_changes_round_trips_the_cluster_stage_table(tmp_path):
    path = tmp_path / "changes.parquet"
    write_table(theme_changes(SECOND_RUN), THEME_CHANGES, path)
    card_map, themes = two_themes()
    from_file = build(card_map=card_map, themes=themes, changes=read_changes(path))
    assert from_file == build(card_map=card_map, themes=themes, changes=theme_changes(SECOND_RUN))


@pytest.mark.parametrize("row, message", [
    (("t1", "x", "vanished", 1, 0, None, []), r"row 2, column 'change': 'vanished' is not one of \['new'"),
    (("t1", "x", "merged", 1, 0, None, []), r"row 2, column 'merged_into': None for a 'merged' theme"),
    (("t1", "x", "retired", 1, 0, "t2", []), r"row 2, column 'merged_into': 't2' for a 'retired' theme"),
    (("t8", "x", "retired", 1, 0, None, []), "theme 't8' has more than one row"),
])
def test_a_bad_changes_file_is_named_with_row_and_value(tmp_path, row, message):
    path = tmp_path / "changes.parquet"
    write_table(theme_changes([SECOND_RUN[0], row]), THEME_CHANGES, path)
    with pytest.raises(ReportError, match=f"{re.escape(str(path))}.*{message}"):
        read_changes(path)


def write_stage_outputs(root: Path, changes: pd.DataFrame) -> dict:
    """The files `innsikt report` reads, from the in-memory frames: the stage's paths as keywords."""
    cards, card_map, themes, votes = frames()
    (root / "ingest").mkdir(parents=True)
    (root / "ingest" / "manifest.json").write_text(json.dumps({"inputs": INPUTS, "redactions": REDACTIONS,
                                                                        "redactions_by_field": REDACTIONS_BY_FIELD}),
                                                   encoding="utf-8")
    write_table(votes, VOTES, root / "ingest" / "votes.parquet")
    write_table(cards, NORMALISED, root / "cards.parquet")
    (root / "redactions.json").write_text(json.dumps({"redactions": {"telefon": 0, "e-post": 0, "fødselsnummer": 0}}),
                                          encoding="utf-8")
    write_table(embeddings(), EMBEDDINGS, root / "embeddings.parquet")
    write_table(changes, THEME_CHANGES, root / "cluster" / "changes.parquet")
    write_table(card_map, CARD_MAP, root / "map" / "cards.parquet")
    write_table(themes, THEMES, root / "map" / "themes.parquet")
    write_table(pd.DataFrame(columns=CURATION.names), CURATION, root / "map" / "curation.parquet")
    write_table(themes[CLUSTER_TOPICS.names], CLUSTER_TOPICS, root / "cluster" / "topics.parquet")
    return dict(ingest_dir=root / "ingest", cards_path=root / "cards.parquet",
                embeddings_path=root / "embeddings.parquet", cluster_dir=root / "cluster", map_dir=root / "map",
                taxonomy_path=REPO / "configs" / "taxonomy.yaml", params=Params())


@pytest.mark.slow
def test_run_reads_the_changes_and_writes_them_byte_identically(tmp_path):
    stage = write_stage_outputs(tmp_path / "in", theme_changes([("t1", "budsjett, ettårig", "shrunk", 5, 3, None, []),
                                                               ("t0", "siloer", "retired", 2, 0, None, [])]))
    insights = report.run(**stage, out_dir=tmp_path / "one")
    report.run(**stage, out_dir=tmp_path / "two")
    assert insights["changes"]["counts"]["shrunk"] == 1 and insights["changes"]["counts"]["retired"] == 1
    written = (tmp_path / "one" / "insights.json").read_bytes()
    assert written == (tmp_path / "two" / "insights.json").read_bytes()
    assert json.loads(written)["changes"] == insights["changes"]
    for name in ("report.md", "report.html"):
        assert "Endringer siden forrige kjøring" in (tmp_path / "one" / name).read_text(encoding="utf-8")


def test_run_without_changes_parquet_names_the_missing_file(tmp_path):
    stage = write_stage_outputs(tmp_path / "in", theme_changes())
    (stage["cluster_dir"] / "changes.parquet").unlink()
    with pytest.raises(SchemaError, match="changes.parquet: stage input not found"):
        report.run(**stage, out_dir=tmp_path / "out")


def test_the_report_pages_show_the_changes():
    card_map, themes = two_themes()
    insights = build(card_map=card_map, themes=themes, changes=theme_changes(SECOND_RUN))
    md, page = render_markdown(insights), render_html(insights)
    assert "- digitalisering (hadde 3 kort), gikk inn i «budsjett, ettårig»" in md
    assert "gammelt tema \\<b>borte\\</b>" in md
    assert "gammelt tema &lt;b&gt;borte&lt;/b&gt;" in page and "<b>borte" not in page
    first = build()
    assert "Første kjøring" in render_markdown(first) and "Første kjøring" in render_html(first)


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
    for path in (("votes", 0, "split"), ("themes", 0, "breadth"), ("cards", 0, "position"), ("run", "params_hash"),
                 ("changes", "since_previous_run"), ("themes", 0, "change")):
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
    current = [c for c in demo["changes"]["themes"] if c["change"] not in ("merged", "retired")]
    # The registry tracks topics: every sub-theme and emergent topic shown has its change row.
    shown = [t["theme_id"] for t in demo["themes"] if t["change"] is not None]
    shown += [sub["theme_id"] for t in demo["themes"] for sub in t["subthemes"]]
    assert shown and set(shown) <= {c["theme_id"] for c in current}
    assert sum(demo["changes"]["counts"].values()) == len(demo["changes"]["themes"])


# --------------------------------------------------------------------------- files beside insights.json


def test_plots_are_written_as_png_svg_and_csv(tmp_path):
    write_plots(build(), tmp_path)
    for name in ("categories_by_workshop", "card_map"):
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        svg = (tmp_path / f"{name}.svg").read_text(encoding="utf-8")
        assert "<svg" in svg and "<script" not in svg
    categories = (tmp_path / "categories.csv").read_text(encoding="utf-8-sig").splitlines()
    assert categories[0] == "workshop,category,cards" and "w2,Samhandling,1" in categories
    themes = (tmp_path / "themes.csv").read_text(encoding="utf-8-sig").splitlines()
    assert themes == ["rank,theme,category,workshops,groups,voices,cards,relevant_for_many",
                      '1,"budsjett, ettårig",Rammebetingelser,2,2,2,3,true']


HOSTILE_WORKSHOP = '=HYPERLINK("http://x.example","klikk")'


def test_plot_csvs_neutralise_formulas_and_are_utf8_with_a_bom_that_dvc_plots_still_read(tmp_path):
    cards, card_map, themes, votes = frames()
    cards["workshop_id"] = cards["workshop_id"].replace({"w1": HOSTILE_WORKSHOP})
    votes["workshop_id"] = votes["workshop_id"].replace({"w1": HOSTILE_WORKSHOP})
    insights = build(cards=cards, votes=votes)
    insights["themes"][0]["label"] = "-budsjett, ettårig"

    write_plots(insights, tmp_path)

    for name in ("categories.csv", "themes.csv"):
        raw = (tmp_path / name).read_bytes()
        assert raw.startswith(codecs.BOM_UTF8), name  # Excel shows æ/ø/å only with the BOM
        rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
        assert [cell for row in rows for cell in row if cell[:1] in ("=", "+", "-", "@", "\t", "\r")] == []
    categories = list(csv.DictReader(io.StringIO((tmp_path / "categories.csv").read_text(encoding="utf-8-sig"))))
    assert {row["workshop"] for row in categories} == {"'" + HOSTILE_WORKSHOP, "w2"}
    themes = list(csv.DictReader(io.StringIO((tmp_path / "themes.csv").read_text(encoding="utf-8-sig"))))
    assert themes[0]["theme"] == "'-budsjett, ettårig" and themes[0]["cards"] == "3"
    # DVC reads a plots file as utf8, the BOM kept in the first field name: every field a plot uses is there.
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))
    for plot in (p for p in spec["plots"] if isinstance(p, dict)):
        for props in (p for p in plot.values() if isinstance(p, dict) and isinstance(p.get("y"), dict)):
            for path, field in props["y"].items():
                with open(tmp_path / Path(path).name, encoding="utf8", newline="") as handle:
                    read = list(csv.DictReader(handle))
                assert read and all(row[field] and row[props["x"]] for row in read), (path, field)


def many_workshops(n: int = 11) -> dict:
    """build()'s document with more workshops than the palette has colours (some with no cards in a category)."""
    insights = build()
    workshops = [f"w{i:02d}" for i in range(n)]
    insights["workshops"] = [{"workshop_id": w, "cards": 3, "assigned": 3, "outlier": 0, "rejected": 0}
                             for w in workshops]
    for i, category in enumerate(insights["categories"]):
        category["per_workshop"] = {w: (i + j) % 4 for j, w in enumerate(workshops) if (i + j) % 4}
    return insights


def _svg_texts(svg: str, cls: str) -> list[str]:
    """The texts of an SVG file's elements of class `cls` (the legend's entries)."""
    root = ElementTree.fromstring(svg)
    return ["".join(g.itertext()) for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == cls]


def test_the_category_chart_has_a_legend_while_every_workshop_has_its_own_colour(tmp_path):
    write_plots(build(), tmp_path / "few")
    assert _svg_texts((tmp_path / "few" / "categories_by_workshop.svg").read_text(encoding="utf-8"),
                      "legend") == ["w1", "w2"]
    write_plots(many_workshops(), tmp_path / "many")
    svg = (tmp_path / "many" / "categories_by_workshop.svg").read_text(encoding="utf-8")
    assert _svg_texts(svg, "legend") == []
    # Every workshop's cards are drawn all the same: one segment per workshop and category with cards.
    insights = many_workshops()
    assert svg.count(" kort</title></rect>") == sum(len(c["per_workshop"]) for c in insights["categories"])


def test_the_plot_files_are_the_report_pages_charts(tmp_path):
    """Drawn one way: the files' bars and points are the page's, the file adds its style and legend."""
    insights = build()
    write_plots(insights, tmp_path)
    page = render_html(insights)
    bars = (tmp_path / "categories_by_workshop.svg").read_text(encoding="utf-8")
    rows = re.findall(r'<g class="bar-row">.*?</g>', page)
    assert rows and rows == re.findall(r'<g class="bar-row">.*?</g>', bars)
    points = re.findall(r'<circle class="pt" cx="[^"]+" cy="[^"]+"', page)
    assert points and points == re.findall(r'<circle class="pt" cx="[^"]+" cy="[^"]+"', (
        tmp_path / "card_map.svg").read_text(encoding="utf-8"))


def test_the_card_map_file_stays_small_at_many_cards(tmp_path):
    insights = build()
    live = [c for c in insights["cards"] if c["position"] is not None]
    insights["cards"] = [{**c, "card_id": f"{c['card_id']}{i}", "position": {"x": c["position"]["x"] + i / 100,
                                                                          "y": c["position"]["y"]}}
                         for i in range(50) for c in live]
    write_plots(insights, tmp_path)
    svg = (tmp_path / "card_map.svg").read_text(encoding="utf-8")
    # A point per card, without the page's tooltip (the card's text) or filter attributes.
    assert svg.count("<circle class=\"pt\"") == len(insights["cards"])
    assert "<title>" not in svg.split("</title>", 1)[1] and "data-workshop" not in svg
    assert len(svg) < 120 * len(insights["cards"]) + 10_000


@pytest.mark.parametrize("document", [build, many_workshops])
def test_plot_files_are_byte_identical_across_runs(tmp_path, document):
    write_plots(document(), tmp_path / "one")
    write_plots(document(), tmp_path / "two")
    for path in sorted((tmp_path / "one").iterdir()):
        assert path.read_bytes() == (tmp_path / "two" / path.name).read_bytes(), path.name


def test_dvc_declares_the_report_inputs_plots_metrics_and_an_offline_template():
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))
    report = spec["stages"]["report"]
    assert "outputs/embed/embeddings.parquet" in report["deps"]
    assert "--embeddings outputs/embed/embeddings.parquet" in report["cmd"]
    assert "outputs/cluster" in report["deps"] and "--clusters outputs/cluster" in report["cmd"]  # changes.parquet
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


def test_normalise_safety_net_redactions_are_added_to_the_run_counts():
    redactions = {"telefon": 2, "e-post": 0, "fødselsnummer": 0}
    by_field = {"group_id": {"telefon": 1, "e-post": 0, "fødselsnummer": 0},
                "text": {"telefon": 1, "e-post": 0, "fødselsnummer": 0}}
    none = {"telefon": 0, "e-post": 0, "fødselsnummer": 0}
    assert report.with_normalise_redactions(redactions, by_field, none) == (redactions, by_field)
    total, fields = report.with_normalise_redactions(redactions, by_field, {**none, "e-post": 1})
    assert total == {"telefon": 2, "e-post": 1, "fødselsnummer": 0}
    assert list(fields) == ["group_id", "text", "text_norm"] and fields["text_norm"]["e-post"] == 1


def test_relevant_for_many_needs_half_the_workshops_and_an_average_number_of_voices():
    from pipeline.report import mark_relevant_for_many

    entries = [{"voices": v, "breadth": {"workshops": w}} for v, w in ((20, 4), (4, 4), (12, 1), (8, 2))]
    mark_relevant_for_many(entries, 4)  # average voices 11
    assert [e["breadth"]["relevant_for_many"] for e in entries] == [True, False, False, False]


def test_a_theme_is_distinctive_for_a_workshop_only_when_a_small_count_test_says_so():
    from pipeline.report import distinctive_for

    live = {"w1": 40, "w2": 40, "w3": 40, "w4": 40}
    found = distinctive_for({"w1": 9, "w2": 1}, live)
    assert found["workshop_id"] == "w1" and found["cards"] == 9 and found["p_value"] < 0.05
    assert distinctive_for({"w1": 3, "w2": 1, "w3": 2}, live) is None  # 3 of 6: chance at these counts
    assert distinctive_for({"w1": 2}, {"w1": 40}) is None  # one workshop: nothing to compare with


def test_vote_stance_says_whether_the_groups_agree_or_are_divided():
    from pipeline.report import vote_stance

    def tally(share):
        return {"groups": 10, "split": {"majority_share": share, "text": "x"}}

    assert vote_stance(None) is None
    assert [vote_stance(tally(s))["stance"] for s in (1.0, 0.8, 0.7, 0.6, 0.5)] == [
        "agreed", "agreed", "leaning", "divided", "divided"]
