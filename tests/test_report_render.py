"""Tests for pipeline.report_render: schema, Markdown and self-contained HTML."""
from __future__ import annotations

import copy
import html
import re
from html.parser import HTMLParser

import jsonschema
import pytest
from jsonschema import Draft202012Validator

from pipeline import report_render
from pipeline.report_render import load_schema, render_html, render_markdown, validate_insights

XSS = "<script>alert(1)</script>"
HASH_A = "a" * 64
HASH_B = "0123456789abcdef" * 4


def _card(card_id, workshop, text, status="assigned", theme=None, category=None, tax=None, conf=None, xy=(0.0, 0.0),
          **extra):
    card = {
        "card_id": card_id,
        "workshop_id": workshop,
        "group_id": "g1",
        "card_type": "postit",
        "text": text,
        "status": status,
        "reason": None,
        "theme_id": theme,
        "subtheme_id": None,
        "category_id": category,
        "taxonomy_theme_id": tax,
        "confidence": conf,
        "duplicate_of": None,
        "duplicate_kind": None,
        "language": "nb",
        "position": None if status == "rejected" else {"x": xy[0], "y": xy[1]},
    }
    card.update(extra)
    return card


def _change(theme_id, label, change, before, after, merged_into=None, split_from=()):
    return {"theme_id": theme_id, "label": label, "change": change, "size_before": before, "size_after": after,
            "merged_into": merged_into, "split_from": list(split_from)}


def _first_run(insights: dict) -> None:
    """The fixture as a first run: every theme new, nothing before."""
    insights["changes"] = {
        "since_previous_run": False,
        "counts": {"new": 3, "grown": 0, "shrunk": 0, "unchanged": 0, "merged": 0, "retired": 0},
        "themes": [_change(t["theme_id"], t["label"], "new", 0, t["size"]) for t in insights["themes"]],
        "curation": [],
    }
    for theme in insights["themes"]:
        theme["change"] = "new"


@pytest.fixture()
def insights() -> dict:
    """Two workshops, two taxonomy categories, one emergent theme, a hostile card, a second run."""
    return {
        "schema_version": "0.8.0",
        "run": {
            "innsikt_version": "0.1.0",
            "params_hash": HASH_A,
            "embedding_model": "e5-small-q4",
            "package_versions": {"numpy": "1.26.4", "bertopic": "0.17.4"},
            "inputs": [
                {"path": "data/cards.xlsx", "sha256": HASH_B, "kind": "cards", "rows": 9},
                {"path": "data/votes.csv", "sha256": HASH_A, "kind": "votes", "rows": 8},
            ],
            "counts": {"cards": 9, "assigned": 6, "outlier": 1, "rejected": 2, "votes": 8},
            "redactions": {"telefon": 1, "e-post": 0, "fødselsnummer": 0},
            "redactions_by_field": {"text": {"telefon": 1, "e-post": 0, "fødselsnummer": 0}},
        },
        "taxonomy": {
            "id": "kmd-test",
            "categories": [
                {
                    "category_id": "kultur",
                    "name": "Kultur og tankesett",
                    "themes": [
                        {
                            "taxonomy_theme_id": "ledelse-eller-medarbeider",
                            "name": "Medarbeider- eller lederdrevet",
                            "statements": [
                                "Det er medarbeiderdrevet innovasjon som gir mest verdi.",
                                "Det er lederdrevet innovasjon som gir mest verdi.",
                            ],
                        },
                        {"taxonomy_theme_id": "endringskultur", "name": "Endringskultur", "statements": []},
                    ],
                },
                {
                    "category_id": "samhandling",
                    "name": "Samhandling",
                    "themes": [
                        {
                            "taxonomy_theme_id": "siloer",
                            "name": "Siloer",
                            "statements": ["Sektororganiseringen er en barriere."],
                        }
                    ],
                },
            ],
        },
        "workshops": [
            {"workshop_id": "W1", "cards": 5, "assigned": 4, "outlier": 0, "rejected": 1},
            {"workshop_id": "W2", "cards": 4, "assigned": 2, "outlier": 1, "rejected": 1},
        ],
        "categories": [
            {"category_id": "kultur", "name": "Kultur og tankesett", "size": 3,
             "per_workshop": {"W1": 2, "W2": 1}, "theme_ids": ["t1"]},
            {"category_id": "samhandling", "name": "Samhandling", "size": 1,
             "per_workshop": {"W1": 1}, "theme_ids": ["t2"]},
            {"category_id": "emergent", "name": "Nye temaer (utenfor taksonomien)", "size": 2,
             "per_workshop": {"W1": 1, "W2": 1}, "theme_ids": ["t3"]},
        ],
        "themes": [
            {
                "theme_id": "t2", "label": "Samarbeid på tvers", "keywords": ["samarbeid", "tvers"],
                "category_id": "samhandling", "taxonomy_theme_id": "siloer", "emergent": False,
                "confidence": 0.61, "size": 1, "subthemes": [], "vote": None, "change": "shrunk", "voices": 1, "per_workshop": {"W1": 1},
                "breadth": {"workshops": 1, "groups": 1, "rank": 3, "relevant_for_many": False, "distinctive_for": None},
                "quotes": [{"card_id": "c4", "workshop_id": "W1", "card_type": "wish",
                            "text": "Mindre silo | mer deling"}],
            },
            {
                "theme_id": "t1", "label": "Ledere som gir tillit", "keywords": ["leder", "tillit", "mot"],
                "category_id": "kultur", "taxonomy_theme_id": "ledelse-eller-medarbeider", "emergent": False,
                "confidence": 0.834, "size": 3, "subthemes": [], "vote": None, "change": "grown", "voices": 3, "per_workshop": {"W1": 2, "W2": 1},
                "breadth": {"workshops": 2, "groups": 1, "rank": 1, "relevant_for_many": True, "distinctive_for": None},
                "quotes": [
                    {"card_id": "c1", "workshop_id": "W1", "card_type": "postit",
                     "text": "Ledere må tørre å gi fra seg kontroll"},
                    {"card_id": "c2", "workshop_id": "W1", "card_type": "oracle", "text": XSS},
                    {"card_id": "c3", "workshop_id": "W2", "card_type": "reflection",
                     "text": 'Tillit & "rom" for å feile'},
                ],
            },
            {
                "theme_id": "t3", "label": "Kunstig intelligens", "keywords": ["ki"],
                "category_id": "emergent", "taxonomy_theme_id": None, "emergent": True,
                "confidence": 0.08, "size": 2, "subthemes": [], "vote": None, "change": "new", "voices": 1, "per_workshop": {"W1": 1, "W2": 1},
                "breadth": {"workshops": 2, "groups": 2, "rank": 2, "relevant_for_many": True, "distinctive_for": None},
                "quotes": [{"card_id": "c5", "workshop_id": "W2", "card_type": "other",
                            "text": "KI i saksbehandling"}],
            },
        ],
        "changes": {
            "since_previous_run": True,
            "counts": {"new": 1, "grown": 1, "shrunk": 1, "unchanged": 0, "merged": 1, "retired": 1},
            "themes": [
                _change("t3", "Kunstig intelligens", "new", 0, 2, split_from=["t2", "t8"]),
                _change("t1", "Ledere som gir tillit", "grown", 2, 3),
                _change("t2", "Samarbeid på tvers", "shrunk", 4, 1),
                _change("t0", "Tillit i ledelsen", "merged", 2, 0, merged_into="t1"),
                _change("t8", f"Kaffe {XSS}", "retired", 3, 0),
            ],
            "curation": [{"line": 12, "rule": "rename", "target": "t1", "detail": f"renamed to 'Tillit {XSS}'",
                          "cards": 3}],
        },
        "votes": [
            {"taxonomy_theme_id": "ledelse-eller-medarbeider", "category_id": "kultur", "groups": 8,
             "statements": [
                 {"choice": "1", "statement": "Det er medarbeiderdrevet innovasjon som gir mest verdi.", "count": 5,
                  "per_workshop": {"W1": 3, "W2": 2}},
                 {"choice": "2", "statement": "Det er lederdrevet innovasjon som gir mest verdi.", "count": 3,
                  "per_workshop": {"W2": 3}},
             ],
             "split": {"label": "majority", "leading_choice": "1", "majority_share": 0.625, "text": "63 % mot 37 %"}},
            {"taxonomy_theme_id": "endringskultur", "category_id": "kultur", "groups": 1,
             "statements": [{"choice": "agree", "statement": None, "count": 1, "per_workshop": {"W1": 1}},
                            {"choice": "disagree", "statement": None, "count": 0, "per_workshop": {}}],
             "split": {"label": "unanimous", "leading_choice": "agree", "majority_share": 1.0, "text": "enstemmig"}},
        ],
        "cards": [
            _card("c1", "W1", "Ledere må tørre å gi fra seg kontroll", theme="t1", category="kultur",
                  tax="ledelse-eller-medarbeider", conf=0.9, xy=(0.31, -0.2)),
            _card("c2", "W1", XSS, theme="t1", category="kultur", tax="ledelse-eller-medarbeider", conf=0.7,
                  card_type="oracle", xy=(0.25, -0.1)),
            _card("c3", "W2", 'Tillit & "rom" for å feile', theme="t1", category="kultur",
                  tax="ledelse-eller-medarbeider", conf=0.8, card_type="reflection", group_id=None),
            _card("c4", "W1", "Mindre silo | mer deling", theme="t2", category="samhandling", tax="siloer",
                  conf=0.61, card_type="wish"),
            _card("c5", "W2", "KI i saksbehandling", theme="t3", category="emergent", conf=0.08,
                  card_type="other"),
            _card("c6", "W1", "KI i saksbehandling", theme="t3", category="emergent", conf=0.08,
                  duplicate_of="c5", duplicate_kind="exact"),
            _card("c7", "W2", "kaffe?", status="outlier", xy=(-0.4, 0.5)),
            _card("c8", "W1", "se baksiden", status="rejected", reason="junk phrase"),
            _card("c9", "W2", "x", status="rejected", reason="too few letters"),
        ],
        "review": {
            "method": "usikre kort nær mange andre usikre kort først",
            "queue": [{"card_id": "c4", "workshop_id": "W1", "group_id": "g1", "text": "Mindre silo | mer deling",
                       "theme_id": "t2", "theme_label": "Siloer", "category_id": "samhandling",
                       "taxonomy_theme_id": "siloer", "confidence": 0.61,
                       "reason": "usikker mellom Siloer og Endringskultur", "rank": 1}],
        },
    }


# --------------------------------------------------------------------------- schema


def test_schema_is_valid_draft_2020_12():
    schema = load_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$id"].endswith("insights-0.8.0.json")


def test_schema_objects_are_closed_and_fully_required():
    """Every object schema forbids extra keys and requires all its listed keys."""

    def walk(node):
        if isinstance(node, dict):
            if "properties" in node:
                assert node.get("additionalProperties") is False, node.get("description")
                assert sorted(node["required"]) == sorted(node["properties"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(load_schema())


def test_fixture_validates(insights):
    validate_insights(insights)
    _first_run(insights)
    validate_insights(insights)


def _drop_label(d):
    del d["themes"][0]["label"]


def _extra_key(d):
    d["cards"][0]["colour"] = "red"


def _bad_status(d):
    d["cards"][0]["status"] = "maybe"


def _bad_confidence(d):
    d["themes"][0]["confidence"] = 1.5


def _bad_version(d):
    d["schema_version"] = "0.3.0"  # an older document is not a 0.4 document


def _bad_hash(d):
    d["run"]["params_hash"] = "abc"


def _too_many_quotes(d):
    d["themes"][1]["quotes"] = d["themes"][1]["quotes"] * 2


def _bad_card_type(d):
    d["themes"][0]["quotes"][0]["card_type"] = "napkin"


def _bad_choice(d):
    d["votes"][0]["statements"][0]["choice"] = "3"


def _negative_count(d):
    d["categories"][0]["per_workshop"]["W1"] = -1


def _null_label(d):
    d["themes"][0]["label"] = None


def _drop_breadth(d):
    del d["themes"][0]["breadth"]


def _bad_split_label(d):
    d["votes"][0]["split"]["label"] = "landslide"


def _half_position(d):
    d["cards"][0]["position"] = {"x": 0.1}


def _rank_zero(d):
    d["themes"][0]["breadth"]["rank"] = 0


def _drop_changes(d):
    del d["changes"]


def _drop_theme_change(d):
    del d["themes"][0]["change"]


def _gone_theme_change(d):
    d["themes"][0]["change"] = "merged"  # a theme of this run cannot be gone


def _bad_change_kind(d):
    d["changes"]["themes"][0]["change"] = "vanished"


def _extra_change_key(d):
    d["changes"]["themes"][0]["when"] = "2026-11-28"


def _drop_change_count(d):
    del d["changes"]["counts"]["retired"]


def _negative_size_before(d):
    d["changes"]["themes"][1]["size_before"] = -1


def _empty_split_from_id(d):
    d["changes"]["themes"][0]["split_from"] = [""]


INVALID = [_drop_label, _extra_key, _bad_status, _bad_confidence, _bad_version, _bad_hash,
           _too_many_quotes, _bad_card_type, _bad_choice, _negative_count, _null_label, _drop_breadth,
           _bad_split_label, _half_position, _rank_zero, _drop_changes, _drop_theme_change, _gone_theme_change,
           _bad_change_kind, _extra_change_key, _drop_change_count, _negative_size_before, _empty_split_from_id]


@pytest.mark.parametrize("mutate", INVALID)
def test_invalid_documents_are_rejected(insights, mutate):
    mutate(insights)
    with pytest.raises(jsonschema.ValidationError):
        validate_insights(insights)


@pytest.mark.parametrize("mutate", INVALID)
def test_the_compiled_validator_alone_rejects_every_invalid_document(insights, mutate):
    """validate_insights passes whatever jsonschema-rs accepts, so it must catch each of these itself."""
    mutate(insights)
    assert not report_render._compiled_validator().is_valid(insights)


def test_an_invalid_document_gets_jsonschemas_error(insights):
    insights["cards"][0]["status"] = "maybe"
    with pytest.raises(jsonschema.ValidationError, match="'maybe' is not one of") as caught:
        validate_insights(insights)
    assert list(caught.value.absolute_path) == ["cards", 0, "status"]


def test_where_the_validators_disagree_the_stricter_wins(insights):
    # Python's re lets "$" match before a final newline; ECMA-262, as the schema standard says, does not.
    insights["schema_version"] += "\n"
    Draft202012Validator(load_schema()).validate(insights)
    with pytest.raises(jsonschema.ValidationError, match="at schema_version; found by jsonschema-rs"):
        validate_insights(insights)


def test_load_schema_returns_independent_copies():
    load_schema()["title"] = "changed"
    assert load_schema()["title"] != "changed"


# --------------------------------------------------------------------------- html


class _TagBalance(HTMLParser):
    """Minimal well-formedness check: every non-void element is closed in order."""

    VOID = {"meta", "input", "br", "rect", "hr", "img", "link"}

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        pass  # self-closing (<rect .../>)

    def handle_endtag(self, tag):
        if tag in self.VOID and (not self.stack or self.stack[-1] != tag):
            return  # e.g. <rect ...>...</rect> with a <title> child
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}>, open: {self.stack[-3:]}")
        else:
            self.stack.pop()


def test_html_is_balanced(insights):
    parser = _TagBalance()
    parser.feed(render_html(insights))
    assert parser.errors == []
    assert parser.stack == []


def test_html_has_no_external_resources(insights):
    page = render_html(insights)
    assert "http://" not in page
    assert "https://" not in page
    assert "src=" not in page
    assert "<link" not in page and "<img" not in page and "@import" not in page and "url(" not in page
    # The only links are in-page fragments.
    for target in re.findall(r'href="([^"]*)"', page):
        assert target.startswith("#"), target


def test_html_structure(insights):
    page = render_html(insights)
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>Innsikt – rapport</title>" in page
    assert '<svg class="chart"' in page
    for heading in ["Oversikt", "Endringer siden forrige kjøring", "Kategorier", "Nye temaer (utenfor taksonomien)",
                    "Stemmer", "Alle kort"]:
        assert f">{heading}</h2>" in page
    assert '<input id="kortsok"' in page
    assert len(re.findall(r'<tr data-workshop="[^"]*" data-group="[^"]*" data-status=', page)) == 9  # one row per card


def test_html_escapes_card_text(insights):
    page = render_html(insights)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert" not in page
    assert "Tillit &amp; &quot;rom&quot; for å feile" in page
    assert page.count("<script>") == 1  # only the table filter


def test_html_escapes_ids_in_attributes(insights):
    insights["themes"][0]["theme_id"] = 'x" onmouseover="alert(1)'
    insights["cards"][3]["theme_id"] = 'x" onmouseover="alert(1)'
    page = render_html(insights)
    assert 'onmouseover="alert' not in page
    assert "x&quot; onmouseover=&quot;alert(1)" in page


def test_html_themes_sorted_and_emergent_separate(insights):
    page = render_html(insights)
    emergent_at = page.index(">Nye temaer (utenfor taksonomien)</h2>")
    assert page.index("Ledere som gir tillit") < page.index("Samarbeid på tvers") < emergent_at
    assert page.index("<h4>Kunstig intelligens</h4>") > emergent_at
    assert "Medarbeider- eller lederdrevet" in page  # mapped taxonomy theme name
    assert "konfidens 0,83" in page


def test_html_vote_split(insights):
    page = render_html(insights)
    assert "Påstand 1: 5 grupper · Påstand 2: 3 grupper" in page
    assert "Det er lederdrevet innovasjon som gir mest verdi." in page
    assert "Enig: 1 gruppe · Uenig: 0 grupper" in page


def test_html_shows_breadth_voices_and_relevance(insights):
    page = render_html(insights)
    assert '<span class="badge">3 unike bidrag</span>' in page
    assert "Bredde: 2 av 2 verksteder · 1 gruppe · 3 unike bidrag" in page
    assert page.count('<span class="badge many">relevant for mange</span>') == 4  # 2 themes, each in 2 places
    breadth = page[page.index('id="bredde"'):page.index('id="kart"')]
    # The ranking lists every theme, broadest first.
    assert breadth.index("Ledere som gir tillit") < breadth.index("Kunstig intelligens") < breadth.index("Samarbeid")


def test_html_vote_split_in_words(insights):
    page = render_html(insights)
    assert "63 % mot 37 % (flertall for Påstand 1)" in page
    assert "Enstemmig (Enig)" in page
    assert "<small>W1: 3, W2: 2</small>" in page  # how the workshops voted


def _changes_html(page: str) -> str:
    return page[page.index('<section id="endringer">'):page.index('<section class="category"')]


def test_html_changes_since_the_previous_run(insights):
    section = _changes_html(render_html(insights))
    assert "Nye: 1 · Vokst: 1 · Krympet: 1 · Uendret: 0 · Slått sammen: 1 · Borte: 1" in section
    for heading in ("Nye", "Vokst", "Krympet", "Slått sammen", "Borte"):
        assert f"<h3>{heading}</h3>" in section
    assert "<h3>Uendret</h3>" not in section  # counted, not listed
    # Themes of this run link to their article; gone ones are plain text.
    assert ('<a href="#tema-t1">Ledere som gir tillit</a> <span class="muted">(2 → 3 kort)</span>' in section)
    assert ('Tillit i ledelsen <span class="muted">(hadde 2 kort)</span>, gikk inn i '
            '<a href="#tema-t1">Ledere som gir tillit</a>') in section
    assert ', skilt ut fra <a href="#tema-t2">Samarbeid på tvers</a>, Kaffe &lt;script&gt;' in section
    assert "Kaffe &lt;script&gt;alert(1)&lt;/script&gt; <span" in section and "<script>" not in section
    kinds = ("Nye", "Vokst", "Krympet", "Slått sammen", "Borte")
    headings = [section.index(f"<h3>{h}</h3>") for h in kinds]
    assert headings == sorted(headings)
    assert '<a href="#endringer">Endringer</a>' in render_html(insights)


def test_html_first_run_says_so_in_one_line(insights):
    _first_run(insights)
    section = _changes_html(render_html(insights))
    assert section.count("<p>") == 1 and "<h3>" not in section
    assert "Første kjøring: ingen tidligere temaer å sammenligne med, så alle temaene er nye (3 temaer)." in section


def test_html_a_rerun_with_nothing_changed_says_so(insights):
    insights["changes"]["themes"] = [_change(t["theme_id"], t["label"], "unchanged", t["size"], t["size"])
                                     for t in insights["themes"]]
    insights["changes"]["counts"] = {"new": 0, "grown": 0, "shrunk": 0, "unchanged": 3, "merged": 0, "retired": 0}
    section = _changes_html(render_html(insights))
    assert "Uendret: 3" in section and "Ingen temaer har endret seg." in section


def _esc_text(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def test_html_card_map(insights):
    page = render_html(insights)
    card_map = page[page.index('<svg class="chart card-map"'):]
    card_map = card_map[:card_map.index("</svg>")]
    placed = [c for c in insights["cards"] if c["position"] is not None]
    assert card_map.count('<circle class="pt"') == len(placed) == 7
    assert 'fill="none"' in card_map  # the outlier is hollow
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in card_map and "<script>" not in card_map
    labels = re.findall(r'<text class="map-label"[^>]*>([^<]*)</text>', card_map)
    assert sorted(labels) == sorted(_esc_text(t["label"]) for t in insights["themes"])  # each theme named once
    assert "hul sirkel: uteligger" in page


def test_html_without_positions_says_so(insights):
    for card in insights["cards"]:
        card["position"] = None
    assert "Ingen kort å vise." in render_html(insights)


def test_html_counts_and_workshops(insights):
    page = render_html(insights)
    for label, n in [("kort", 9), ("tildelt", 6), ("uteliggere", 1), ("avvist", 2)]:
        assert re.search(rf'<span class="n"><span data-n="[a-z]+" data-id="[a-z]*">{n}</span></span>{label}', page)
    assert '<span class="n">8</span>stemmer' in page  # votes are not recounted by the filter
    assert "W1" in page and "W2" in page
    assert "duplikat av c5" in page
    assert "Taksonomitemaer uten kort: Endringskultur" in page


def test_html_is_deterministic(insights):
    first = render_html(insights)
    assert render_html(copy.deepcopy(insights)) == first
    # Mapping order must not leak into the output.
    shuffled = copy.deepcopy(insights)
    shuffled["run"]["package_versions"] = dict(reversed(list(shuffled["run"]["package_versions"].items())))
    for item in [*shuffled["categories"], *shuffled["themes"]]:
        item["per_workshop"] = dict(reversed(list(item["per_workshop"].items())))
    assert render_html(shuffled) == first


def test_html_handles_empty_document(insights):
    for key in ("themes", "votes", "cards"):
        insights[key] = []
    insights["categories"] = insights["categories"][:2]
    page = render_html(insights)
    assert "Ingen nye temaer." in page
    assert "Ingen stemmer registrert." in page


# --------------------------------------------------------------------------- markdown


def test_markdown_content(insights):
    md = render_markdown(insights)
    assert md.startswith("# Innsikt – rapport\n")
    for theme in insights["themes"]:
        assert theme["label"] in md
    assert "> Ledere må tørre å gi fra seg kontroll\n> (c1, W1, post-it)" in md
    assert "## Nye temaer (utenfor taksonomien)" in md
    assert md.index("#### Kunstig intelligens") > md.index("## Nye temaer")
    assert "| Kultur og tankesett | 2 | 1 | 3 |" in md
    assert "| Kategori | Taksonomitema | Grupper | Fordeling | Valg | Antall | Påstand |" in md
    assert "63 % mot 37 % (flertall for Påstand 1)" in md


def test_markdown_shows_breadth_voices_and_plots(insights):
    md = render_markdown(insights)
    assert "Bredde: 2 av 2 verksteder · 1 gruppe · 3 unike bidrag · rang 1 · **relevant for mange**" in md
    assert "| 1 | Ledere som gir tillit | Kultur og tankesett | 2 | 1 | 3 | 3 | ja |" in md
    assert "![Kort per kategori og verksted](plots/categories_by_workshop.png)" in md
    assert "![Kart over kortene](plots/card_map.png)" in md


def test_markdown_escapes_table_pipes_and_html(insights):
    insights["categories"][1]["name"] = "Sam|handling"
    md = render_markdown(insights)
    assert "| Sam\\|handling | 1 | 0 | 1 |" in md
    assert "\\<script>alert(1)\\</script>" in md
    assert "> Mindre silo | mer deling" in md  # verbatim outside tables


def test_markdown_changes_since_the_previous_run(insights):
    md = render_markdown(insights)
    section = md[md.index("## Endringer siden forrige kjøring"):md.index("## Kategorier")]
    assert "Nye: 1 · Vokst: 1 · Krympet: 1 · Uendret: 0 · Slått sammen: 1 · Borte: 1" in section
    assert ("### Nye\n\n- Kunstig intelligens (2 kort), skilt ut fra «Samarbeid på tvers», "
            "«Kaffe \\<script>") in section
    assert "- Samarbeid på tvers (4 → 1 kort)" in section
    assert "- Tillit i ledelsen (hadde 2 kort), gikk inn i «Ledere som gir tillit»" in section
    assert "- Kaffe \\<script>alert(1)\\</script> (hadde 3 kort)" in section
    _first_run(insights)
    md = render_markdown(insights)
    section = md[md.index("## Endringer siden forrige kjøring"):md.index("## Kategorier")]
    assert section == ("## Endringer siden forrige kjøring\n\nFørste kjøring: ingen tidligere temaer å sammenligne "
                       "med, så alle temaene er nye (3 temaer).\n\n")


def test_markdown_is_deterministic(insights):
    assert render_markdown(insights) == render_markdown(copy.deepcopy(insights))


def test_cards_outside_every_theme_are_reported_as_other_input(insights):
    outside = [c for c in insights["cards"] if c["status"] == "outlier"]
    assert outside
    page, markdown = render_html(insights), render_markdown(insights)
    section = page[page.index('<section id="annet-innspill">'):]
    section = section[:section.index("</section>")]
    assert f"· {len(outside)} kort" in re.sub("<[^>]+>", "", section) and all(c["card_id"] in section for c in outside)
    assert f"## Annet innspill ({len(outside)} kort)" in markdown


# --------------------------------------------------------------------------- workshop/group filter


class _Attributes(HTMLParser):
    """(tag, attributes) of every element that carries data-workshop, attribute values unescaped."""

    def __init__(self):
        super().__init__()
        self.found: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        if any(name == "data-workshop" for name, _ in attrs):
            self.found.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


HOSTILE_WORKSHOP = 'W1" onmouseover="alert(1)'
HOSTILE_GROUP = "<script>alert(2)</script>&"


def test_html_filter_attributes_carry_hostile_workshop_and_group_names_escaped(insights):
    for card in insights["cards"]:
        if card["workshop_id"] == "W1":
            card["workshop_id"], card["group_id"] = HOSTILE_WORKSHOP, HOSTILE_GROUP
    for theme in insights["themes"]:
        for quote in theme["quotes"]:
            quote["workshop_id"] = HOSTILE_WORKSHOP if quote["workshop_id"] == "W1" else quote["workshop_id"]
    insights["workshops"][0]["workshop_id"] = HOSTILE_WORKSHOP
    page = render_html(insights)
    assert 'onmouseover="alert' not in page and "<script>alert" not in page
    assert 'data-workshop="W1&quot; onmouseover=&quot;alert(1)"' in page
    assert 'data-group="&lt;script&gt;alert(2)&lt;/script&gt;&amp;"' in page
    parser = _Attributes()
    parser.feed(page)
    by_tag: dict[str, list[dict]] = {}
    for tag, attrs in parser.found:
        by_tag.setdefault(tag, []).append(attrs)
    # One row per card, with what the filter counts by; a card without a group has data-group="".
    rows = [a for a in by_tag["tr"] if "data-status" in a]
    assert [(a["data-workshop"], a["data-group"], a["data-status"], a["data-theme"]) for a in rows] == [
        (c["workshop_id"], c["group_id"] or "", c["status"], c["theme_id"] or "") for c in insights["cards"]]
    # Every quote, its group looked up from its card.
    groups = {c["card_id"]: c["group_id"] or "" for c in insights["cards"]}
    quotes = [q for t in insights["themes"] for q in t["quotes"]]
    assert sorted((a["data-workshop"], a["data-group"]) for a in by_tag["blockquote"]) == sorted(
        (q["workshop_id"], groups[q["card_id"]]) for q in quotes)
    # The group chooser: one option per (workshop, group), the hostile names as data and as text.
    options = [(a["data-workshop"], a["data-group"]) for a in by_tag["option"]]
    assert (HOSTILE_WORKSHOP, HOSTILE_GROUP) in options and ("W2", "") in options and ("W2", "g1") in options
    assert f"W1&quot; onmouseover=&quot;alert(1) · &lt;script&gt;alert(2)&lt;/script&gt;&amp;</option>" in page
    assert "W2 · uten gruppe</option>" in page
    # Map points and other input filter too.
    assert len(by_tag["circle"]) == sum(1 for c in insights["cards"] if c["position"] is not None)
    assert by_tag["li"] == [{"data-workshop": "W2", "data-group": "g1"}]  # the one outlier, c7


def test_html_filter_counts_name_their_scope(insights):
    page = render_html(insights)
    assert '<section id="filter"' in page and '<select id="filter-verksted">' in page
    counts = re.findall(r'<span data-n="(\w+)" data-id="([^"]*)"(?: data-ws="([^"]*)")?>(\d+)</span>', page)
    theme_sizes = {t["theme_id"]: str(t["size"]) for t in insights["themes"]}
    for scope, ident, workshop, n in counts:
        if scope == "theme" and not workshop:
            assert n == theme_sizes[ident]
        if scope == "cat" and workshop:
            category = next(c for c in insights["categories"] if c["category_id"] == ident)
            assert n == str(category["per_workshop"][workshop])
    assert ("all", "", "", "9") in counts and ("status", "outlier", "", "1") in counts
    assert {a for a in re.findall(r'data-scope="(\w+)" data-id="([^"]*)"', page)} >= {
        ("theme", "t1"), ("theme", "t2"), ("theme", "t3"), ("cat", "kultur"), ("cat", "samhandling")}


def test_the_changes_section_lists_the_curation_rules_applied(insights):
    validate_insights(insights)
    assert "linje 12, rename: renamed to 'Tillit" in render_markdown(insights)
    assert '<ul class="curation"><li>linje 12, rename: renamed to &#x27;Tillit' in render_html(insights)
    insights["changes"]["curation"] = []
    assert "Analytikerens beslutninger" not in render_markdown(insights)


# --------------------------------------------------------------------------- templates: escaping everywhere

# Each is harmless only if escaped: markup, an attribute breakout, template syntax, Markdown table and
# emphasis syntax, a code span, an entity that must stay as text and a backslash before a '|'.
HOSTILE = ('<script>alert(1)</script>', '"><img src=x onerror=1>', "{{7*7}}", "| pipe |", "*bold*", "`code`",
           "&amp;", "back\\|slash")
MARK = " " + " ".join(HOSTILE)
# Values that are an enum or a hash in the schema, or that name the emergent category: kept, so the
# document stays one the report understands.
NOT_TEXT = {"status", "card_type", "change", "kind", "stance", "language", "duplicate_kind", "choice",
            "leading_choice", "schema_version", "params_hash", "sha256", "rule"}


def _hostile(value, key=None, parent=None):
    """Every string of the document with MARK appended (ids too, the same way everywhere, so references
    still match), mapping keys that are workshop ids or package names as well."""
    if isinstance(value, dict):
        keyed = key in ("per_workshop", "package_versions")
        return {(k + MARK if keyed else k): _hostile(v, k, key) for k, v in value.items()}
    if isinstance(value, list):
        return [_hostile(v, key, parent) for v in value]
    if (isinstance(value, str) and key not in NOT_TEXT and value != "emergent"
            and not (key == "label" and parent == "split")):
        return value + MARK
    return value


def _review_queue(insights):
    """The review queue another stage adds (insights["review"]): cards an analyst should look at."""
    return {"method": "lav konfidens først", "queue": [
        {"card_id": "c4", "workshop_id": "W1", "group_id": "g1", "text": "Mindre silo | mer deling", "theme_id": "t2",
         "theme_label": "Samarbeid på tvers", "category_id": "samhandling", "taxonomy_theme_id": "siloer",
         "confidence": 0.61, "reason": "lav konfidens", "rank": 2},
        {"card_id": "c2", "workshop_id": "W1", "group_id": None, "text": XSS, "theme_id": None, "theme_label": None,
         "category_id": None, "taxonomy_theme_id": None, "confidence": None, "reason": "uteligger nær grensen",
         "rank": 1},
    ]}


@pytest.fixture()
def hostile(insights) -> dict:
    insights["themes"][1]["subthemes"] = [{
        "theme_id": "t1-a", "label": "Tillit til ansatte", "size": 2,
        "quotes": [{"card_id": "c1", "workshop_id": "W1", "card_type": "postit",
                    "text": "Ledere må tørre å gi fra seg kontroll"}]}]
    insights["themes"][1]["breadth"]["distinctive_for"] = {"workshop_id": "W1", "cards": 2, "p_value": 0.01}
    insights["themes"][1]["vote"] = {"stance": "leaning", "text": "63 % mot 37 %", "groups": 8}
    insights["review"] = _review_queue(insights)
    return _hostile(insights)


def _shown(value: str) -> str:
    return value + MARK


class _Elements(HTMLParser):
    """Every start tag and attribute name of a page."""

    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.attributes: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes.update(name for name, _ in attrs)

    handle_startendtag = handle_starttag


def test_hostile_text_in_every_field_is_escaped_in_the_html(hostile):
    page = render_html(hostile)
    for raw in ("<script>alert", "<img", '"><img', "onerror=1>"):
        assert raw not in page, raw
    parser = _Elements()
    parser.feed(page)
    assert parser.tags.count("script") == 1 and "img" not in parser.tags  # the page's own script only
    assert not {name for name in parser.attributes if name.startswith("on")}
    escaped_mark = html.escape(MARK, quote=True)
    assert "&amp;amp;" in escaped_mark and "{{7*7}}" in escaped_mark and "49" not in escaped_mark
    # Each kind of field reaches the page, escaped: card text, quote, workshop, group, theme and sub-theme
    # labels, category and taxonomy theme names, keywords, vote statements, curation, reasons, run facts.
    for value in ("Ledere må tørre å gi fra seg kontroll", "Mindre silo | mer deling", "W1", "g1",
                  "Ledere som gir tillit", "Tillit til ansatte", "Kultur og tankesett", "Samhandling",
                  "Medarbeider- eller lederdrevet", "Endringskultur", "tillit",
                  "Det er medarbeiderdrevet innovasjon som gir mest verdi.", "junk phrase", "kmd-test",
                  "data/cards.xlsx", "e5-small-q4", "numpy", "lav konfidens først", "uteligger nær grensen",
                  "Kaffe " + XSS):
        assert html.escape(_shown(value), quote=True) in page, value
    assert html.escape(f"linje 12, rename: renamed to 'Tillit {XSS}'{MARK} (3 kort)", quote=True) in page
    # In attributes too: the filter's data-workshop and data-group, the anchors of themes.
    assert f'data-workshop="{html.escape(_shown("W1"), quote=True)}"' in page
    assert f'data-group="{html.escape(_shown("g1"), quote=True)}"' in page
    assert f'id="tema-{html.escape(_shown("t1-a"), quote=True)}"' in page
    parser = _TagBalance()
    parser.feed(page)
    assert parser.errors == [] and parser.stack == []


PIPE = re.compile(r"(?<!\\)\|")


def test_hostile_text_in_every_field_keeps_the_markdown_whole(hostile):
    md = render_markdown(hostile)
    lines = md.split("\n")
    # Every table keeps its columns: as many unescaped '|' on each row as on its header.
    tables, current = [], []
    for line in lines + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    assert len(tables) == 6  # counts, workshops, categories, breadth, review queue, votes
    for table in tables:
        columns = len(PIPE.findall(table[0]))
        assert all(len(PIPE.findall(row)) == columns for row in table), table[0]
        assert re.fullmatch(r"\|(---:?\|)+", table[1])
    # No raw HTML: every '<' of the data is backslash-escaped, so CommonMark shows it as text.
    assert re.search(r"(?<!\\)<", md) is None
    # Each kind of field reaches the Markdown.
    for value in ("Ledere må tørre å gi fra seg kontroll", "W1", "Ledere som gir tillit", "Tillit til ansatte",
                  "Kultur og tankesett", "Det er medarbeiderdrevet innovasjon som gir mest verdi.",
                  "uteligger nær grensen"):
        shown = _shown(value)
        assert report_render._md_inline(shown) in md or report_render._md_cell(shown) in md, value
    # A heading stays one line, its data escaped.
    assert "#### " + report_render._md_inline(_shown("Ledere som gir tillit")) + " (3 kort)\n" in md


# --------------------------------------------------------------------------- the review queue


def test_the_review_queue_is_a_table_when_the_document_has_one(insights):
    insights.pop("review", None)  # the fixture has one; without it nothing is rendered
    assert "Til gjennomgang" not in render_html(insights) and "Til gjennomgang" not in render_markdown(insights)
    insights["review"] = _review_queue(insights)
    page = render_html(insights)
    section = page[page.index('<section id="til-gjennomgang">'):page.index('<section id="stemmer">')]
    assert '<li><a href="#til-gjennomgang">Til gjennomgang</a></li>' in page
    assert "<h2>Til gjennomgang" in section and "Utvalg: lav konfidens først" in section
    rows = re.findall(r"<tr data-workshop.*?</tr>", section)
    assert len(rows) == 2 and ">c2<" in rows[0] and ">c4<" in rows[1]  # by rank
    assert '<a href="#tema-t2">Samarbeid på tvers</a>' in rows[1] and "<td>Siloer</td>" in rows[1]
    assert "<td>0,61</td>" not in rows[1] and '<td class="num">0,61</td>' in rows[1]
    assert "&lt;script&gt;" in rows[0] and 'data-group=""' in rows[0]
    md = render_markdown(insights)
    part = md[md.index("## Til gjennomgang"):md.index("## Stemmer")]
    assert part.startswith("## Til gjennomgang (2 kort)\n\nUtvalg: lav konfidens først\n\n| Rang | Kort-id |")
    assert "| 1 | c2 | W1 | – | – | – | – | – | uteligger nær grensen | \\<script>alert(1)\\</script> |" in part
    assert ("| 2 | c4 | W1 | g1 | Samarbeid på tvers | Samhandling | Siloer | 0,61 | lav konfidens | "
            "Mindre silo \\| mer deling |") in part


# --------------------------------------------------------------------------- packaging


def test_the_templates_style_sheet_and_script_are_in_the_wheel(tmp_path):
    """pyproject's package-data must name every file of pipeline/templates/: built from a copy of the
    sources (no build/ left in the repository), the wheel holds them all."""
    import shutil
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(repo / name, source / name)
    shutil.copytree(repo / "pipeline", source / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(source)], check=True, capture_output=True)
    [wheel] = (tmp_path / "dist").glob("*.whl")
    packed = set(zipfile.ZipFile(wheel).namelist())
    templates = {p.relative_to(repo).as_posix() for p in (repo / "pipeline" / "templates").rglob("*") if p.is_file()}
    assert templates and templates <= packed, sorted(templates - packed)
    assert {"pipeline/templates/report.css", "pipeline/templates/report.js",
            "pipeline/templates/report.html.j2", "pipeline/templates/report.md.j2"} <= templates
