"""Curation that persists: rules written with `innsikt themes ...`, applied by the map stage on every run."""
import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import app, run_all
from pipeline.curation import CurationError, append_rule, apply_rules, load_curation, settle
from pipeline.params import load_params
from pipeline.records import CARD_MAP, STATUS_REJECTED
from pipeline.report_render import validate_insights
from pipeline.ids import EMERGENT
from pipeline.taxonomy import load_taxonomy

runner = CliRunner()

# Topics of the small fixture corpus (stable ids from the registry; the first run is seeded).
BUDGET, SILOS, USERS, MULTI_YEAR, AI = ("theme-6442844a2a", "theme-ad091a0280", "theme-70a6716843",
                                        "theme-791adba1e5", "theme-06cb7dafdb")


def test_the_file_is_strict_and_errors_name_the_line(tmp_path):
    path = tmp_path / "curation.yaml"
    path.write_text("rules:\n  - rename: {theme: theme-a, label: A}\n  - pin: {theme: theme-b, taxonomy: x}\n",
                    encoding="utf-8")
    with pytest.raises(CurationError, match=r"curation.yaml, line 3: rules.1.pin.taxonomy='x': unknown key"):
        load_curation(path)
    path.write_text("rules:\n  - split: {theme: t, new_id: n, label: N}\n", encoding="utf-8")
    with pytest.raises(CurationError, match="line 2: .*exactly one of 'cards' and 'keyword'"):
        load_curation(path)
    assert load_curation(tmp_path / "absent.yaml").rules == ()
    assert load_curation("configs/curation.yaml").rules == ()  # the demo has no rules: its outputs do not change


def test_appending_keeps_comments_and_reads_back(tmp_path):
    path = tmp_path / "curation.yaml"
    shutil.copy("configs/curation.yaml", path)
    append_rule(path, "merge", themes=["theme-b"], into="theme-a")
    append_rule(path, "exclude", card="c-1", reason="testkort æøå")
    curation = load_curation(path)
    assert [r.kind for r in curation.rules] == ["merge", "exclude"]
    assert path.read_text(encoding="utf-8").startswith("# Analyst decisions")
    assert "testkort æøå" in path.read_text(encoding="utf-8")
    assert curation.lines[1] == curation.lines[0] + 1
    with pytest.raises(CurationError, match="split: .*exactly one of 'cards' and 'keyword'"):
        append_rule(path, "split", theme="t", new_id="n", label="N", cards=["c-1"], keyword="x")
    assert len(load_curation(path).rules) == 2


def test_emergent_and_pin_place_the_theme_and_its_cards(tmp_path):
    taxonomy = load_taxonomy("configs/taxonomy.yaml")
    topics = pd.DataFrame({"cluster": [0, 1], "theme_id": ["t-a", "t-b"], "label": ["A", "B"],
                           "keywords": [[], []], "size": [2, 1]})
    card_map = pd.DataFrame({"card_id": ["c1", "c2", "c3"], "status": ["assigned"] * 3,
                             "theme_id": ["t-a", "t-a", "t-b"], "category_id": ["samhandling"] * 3,
                             "taxonomy_theme_id": ["siloer"] * 3, "confidence": [0.9, 0.2, 0.5],
                             "centrality": [1.0] * 3, "subtheme_id": [None] * 3}, columns=CARD_MAP.names)
    path = tmp_path / "curation.yaml"
    append_rule(path, "emergent", theme="t-a")
    append_rule(path, "pin", theme="t-b", taxonomy_theme="budsjettsystemet")
    topics, cards, outcome = apply_rules(load_curation(path), topics, card_map, {}, taxonomy)
    homes = pd.DataFrame({"theme_id": ["t-a", "t-b"], "category_id": ["samhandling"] * 2,
                          "taxonomy_theme_id": ["siloer"] * 2, "emergent": [False, False]})
    homes, cards = settle(outcome, homes, cards, taxonomy)
    assert homes["emergent"].tolist() == [True, False]
    assert homes["category_id"].tolist() == [EMERGENT, "rammebetingelser"]
    assert cards["taxonomy_theme_id"].isna().tolist() == [True, True, False]
    assert cards["taxonomy_theme_id"].iloc[2] == "budsjettsystemet"
    assert outcome.keep == {"t-a", "t-b"}


def _read(out, name):
    return pd.read_parquet(out / "map" / f"{name}.parquet")


def _themes_cli(*args, path):
    result = runner.invoke(app, ["themes", *args, "--curation", str(path)])
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_decisions_hold_when_a_workshop_is_added(tmp_path):
    from conftest import FIXTURES

    corpus, out, cache = tmp_path / "corpus", tmp_path / "out", tmp_path / "cache"
    corpus.mkdir()
    for path in (FIXTURES / "small_corpus").glob("*.csv"):
        shutil.copy(path, corpus)
    params = load_params("configs/params.yaml")

    def run(curation):
        return run_all(inputs=[corpus], out=out, params=params, taxonomy="configs/taxonomy.yaml", cache_dir=cache,
                       curation=curation)

    run(None)
    topics = pd.read_parquet(out / "cluster" / "topics.parquet")
    assert set(topics["theme_id"]) == {BUDGET, SILOS, USERS, MULTI_YEAR, AI}, topics  # the ids the rules name

    curation = tmp_path / "curation.yaml"
    shutil.copy("configs/curation.yaml", curation)
    _themes_cli("rename", SILOS, "Siloer mellom etater", path=curation)
    _themes_cli("merge", MULTI_YEAR, "--into", BUDGET, path=curation)
    _themes_cli("split", USERS, "--new-id", "theme-brukere", "--label", "Brukerne med fra start",
                "--keyword", "brukerne", path=curation)
    _themes_cli("move", "alt-13", AI, path=curation)
    _themes_cli("pin", AI, "systemtilnaerming-eller-enkelttiltak", path=curation)
    _themes_cli("exclude", "mol-21", "--reason", "kontaktinfo", path=curation)

    for workshops in ("before", "after"):
        if workshops == "after":
            shutil.copy(FIXTURES / "added_workshop" / "ws-sunndal.csv", corpus)
        insights = run(curation)
        validate_insights(insights)
        themes, cards = _read(out, "themes").set_index("theme_id"), _read(out, "cards").set_index("card_id")
        text = pd.read_parquet(out / "normalise" / "cards.parquet").set_index("card_id")["text_norm"]
        # rename
        assert themes.loc[SILOS, "label"] == "Siloer mellom etater"
        # merge: the merged theme is gone, its cards sit in the budget sub-theme
        assert MULTI_YEAR not in themes.index
        assert set(cards.loc[["alt-03", "mol-01", "mol-04"], "subtheme_id"]) == {BUDGET}
        # split by keyword: every card of the old theme saying "brukerne", new workshop's included
        users = cards[cards["subtheme_id"] == "theme-brukere"].index
        assert {"mol-10", "mol-20"} <= set(users)
        assert all("brukerne" in text[c].lower() for c in users)
        assert themes.loc["theme-brukere", "label"] == "Brukerne med fra start"
        # pin, and the moved card in the pinned theme
        assert themes.loc[AI, "parent_id"] == "systemtilnaerming-eller-enkelttiltak"
        assert cards.loc["alt-13", "subtheme_id"] == AI
        assert (cards.loc[cards["subtheme_id"] == AI, "theme_id"] == "systemtilnaerming-eller-enkelttiltak").all()
        # exclude
        assert cards.loc["mol-21", "status"] == STATUS_REJECTED
        card = next(c for c in insights["cards"] if c["card_id"] == "mol-21")
        assert card["reason"] == "excluded: kontaktinfo"
        # the changes section says what each rule did, by line
        curated = insights["changes"]["curation"]
        assert [(e["line"], e["rule"]) for e in curated] == [
            (12, "rename"), (13, "merge"), (14, "split"), (15, "move"), (16, "pin"), (17, "exclude")]
        assert curated[1]["detail"] == f"merged {MULTI_YEAR} into {BUDGET}" and curated[1]["cards"] >= 3
    assert insights["changes"]["since_previous_run"] and insights["changes"]["counts"]["retired"] == 0
    for name in ("report.md", "report.html"):  # the report's changes section says what the rules did
        assert f"linje 13, merge: merged {MULTI_YEAR} into {BUDGET}" in (out / "report" / name).read_text("utf-8")
    assert "sun-04" in users  # "Brukerne bør være med og teste nye tjenester": the keyword rule took it

    # An obsolete rule (a theme id not in the run, a card not in the run) stops the map stage, naming its line.
    _themes_cli("rename", "theme-000000dead", "Borte", path=curation)
    _themes_cli("move", "xyz-99", BUDGET, path=curation)
    result = runner.invoke(app, ["map", "--cards", str(out / "normalise" / "cards.parquet"),
                                 "--embeddings", str(out / "embed" / "embeddings.parquet"),
                                 "--clusters", str(out / "cluster"), "--curation", str(curation),
                                 "--cache-dir", str(cache), "--out", str(tmp_path / "map2")])
    assert result.exit_code == 1
    assert "innsikt: error: " in result.output and len(result.output.strip().splitlines()) == 1
    assert f"{curation}, line 19: move: card 'xyz-99' is not in this run" in result.output
    assert f"{curation}, line 18: rename: theme 'theme-000000dead' is not a theme of this run" in result.output
