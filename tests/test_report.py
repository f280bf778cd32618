import json

import jsonschema
import pandas as pd
import pytest

from pipeline.params import Params
from pipeline.report import ReportError, build_insights, check_conservation, choose_quotes, tally_votes
from pipeline.report_render import validate_insights
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


def build():
    cards, card_map, themes, votes = frames()
    return build_insights(cards=cards, card_map=card_map, themes=themes, votes=votes, inputs=INPUTS,
                          redactions=REDACTIONS, taxonomy=TAXONOMY, params=Params())


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


def test_quotes_skip_duplicate_texts_and_prefer_central_cards():
    cards, card_map, *_ = frames()
    members = cards.merge(card_map, on="card_id", suffixes=("_ingest", "")).query("theme_id == 't1'")
    quotes = choose_quotes(members, 4)
    assert [q["card_id"] for q in quotes] == ["b", "c"]  # "a" repeats "b" (most central)


def test_rejected_cards_keep_their_reason_and_are_in_no_theme():
    card = {c["card_id"]: c for c in build()["cards"]}["e"]
    assert card["status"] == "rejected" and card["reason"] == "empty card" and card["theme_id"] is None


def test_vote_tallies_per_statement():
    tallies = {t["taxonomy_theme_id"]: t for t in tally_votes(frames()[3], TAXONOMY)}
    assert [s["count"] for s in tallies["regelverk"]["statements"]] == [1, 1]
    assert tallies["regelverk"]["groups"] == 2
    assert {s["choice"]: s["count"] for s in tallies["siloer"]["statements"]} == {"agree": 1, "disagree": 0}


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
