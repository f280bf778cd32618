"""Tests for pipeline.taxonomy: the official taxonomy file and the shape checks."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.ids import EMERGENT, EMERGENT_NAME
from pipeline.taxonomy import TaxonomyTheme, TaxonomyError, load_taxonomy, parse_taxonomy

REPO_TAXONOMY = Path(__file__).resolve().parents[1] / "configs" / "taxonomy.yaml"


def raw_taxonomy(*categories: dict) -> dict:
    return {"taxonomy": "test", "categories": list(categories)}


def category(cat_id: str, *themes: dict, name: str = "Kategori") -> dict:
    return {"id": cat_id, "name": name, "themes": list(themes)}


def theme(theme_id: str, name: str = "Tema", **extra) -> dict:
    return {"id": theme_id, "name": name, **extra}


@pytest.fixture(scope="module")
def repo_taxonomy():
    return load_taxonomy(REPO_TAXONOMY)


def test_repo_taxonomy_has_six_categories_and_twenty_one_themes(repo_taxonomy):
    assert len(repo_taxonomy.categories) == 6
    assert len(repo_taxonomy.themes) == 21
    ids = [c.id for c in repo_taxonomy.categories] + [t.id for t in repo_taxonomy.themes]
    assert len(ids) == len(set(ids))


def test_repo_taxonomy_themes_know_their_category(repo_taxonomy):
    for cat in repo_taxonomy.categories:
        assert cat.themes, cat.id
        assert all(t.category_id == cat.id for t in cat.themes)


def test_every_repo_theme_prototype_has_its_name_and_statements_or_description(repo_taxonomy):
    for t in repo_taxonomy.themes:
        assert t.prototype.startswith(f"{t.name}. ")
        body = list(t.statements) or [t.description]
        assert all(part and part in t.prototype for part in body), t.id


def test_prototype_joins_name_and_all_statements():
    t = TaxonomyTheme(id="siloer", name="Siloer", category_id="samhandling", statements=("Første påstand.", "Andre påstand."))

    assert t.prototype == "Siloer. Første påstand. Andre påstand."


def test_prototype_falls_back_to_the_description():
    t = TaxonomyTheme(id="org", name="Organisasjonsstruktur", category_id="c", description="Særskilt organisert.")

    assert t.prototype == "Organisasjonsstruktur. Særskilt organisert."


def test_prototype_of_a_bare_theme_is_its_name():
    assert TaxonomyTheme(id="t", name="Spredning", category_id="c").prototype == "Spredning."


def test_parse_reads_statements_description_and_lookups():
    taxonomy = parse_taxonomy(
        raw_taxonomy(
            category("c1", theme("t1", "En", statements=["S1", "S2"]), name="Første"),
            category("c2", theme("t2", "To", description="Beskrivelse")),
        )
    )

    assert taxonomy.id == "test"
    assert taxonomy.theme("t1").statements == ("S1", "S2")
    assert taxonomy.theme("t2").description == "Beskrivelse"
    assert taxonomy.category_name("c1") == "Første"
    assert taxonomy.category_name(EMERGENT) == EMERGENT_NAME


@pytest.mark.parametrize(
    "raw, entry, ident",
    [
        (raw_taxonomy(category("c1", theme("t1"), theme("t1"))), "categories[0].themes[1]", "t1"),
        (raw_taxonomy(category("c1", theme("t1")), category("c2", theme("t1"))), "categories[1].themes[0]", "t1"),
        (raw_taxonomy(category("c1", theme("t1")), category("c1", theme("t2"))), "categories[1]", "c1"),
        (raw_taxonomy(category("c1", theme("c1"))), "categories[0].themes[0]", "c1"),
        (raw_taxonomy(category("c1", theme(EMERGENT))), "categories[0].themes[0]", EMERGENT),
    ],
    ids=["theme-twice-in-category", "theme-in-two-categories", "category-twice", "theme-as-category", "reserved"],
)
def test_duplicate_or_reserved_id_raises_naming_the_entry(raw, entry, ident):
    with pytest.raises(TaxonomyError) as info:
        parse_taxonomy(raw, "tax.yaml")

    assert str(info.value).startswith(f"tax.yaml: {entry}:")
    assert repr(ident) in str(info.value)


@pytest.mark.parametrize(
    "raw",
    [{"taxonomy": "x"}, {"categories": "Kultur"}, ["Kultur"], None],
    ids=["missing", "not-a-list", "top-level-list", "empty-file"],
)
def test_missing_categories_list_raises(raw):
    with pytest.raises(TaxonomyError, match=r"tax.yaml: expected a mapping with a 'categories' list"):
        parse_taxonomy(raw, "tax.yaml")


@pytest.mark.parametrize(
    "raw, entry",
    [
        (raw_taxonomy({"name": "Uten id", "themes": []}), "categories[0]"),
        (raw_taxonomy({"id": "c1", "name": "Uten temaer"}), "categories[0]"),
        (raw_taxonomy(category("c1", theme("t1"), {"id": "t2"})), "categories[0].themes[1]"),
        (raw_taxonomy(category("c1", {"name": "Uten id"})), "categories[0].themes[0]"),
    ],
    ids=["category-id", "category-themes", "theme-name", "theme-id"],
)
def test_entry_missing_a_required_field_raises_naming_the_entry(raw, entry):
    with pytest.raises(TaxonomyError) as info:
        parse_taxonomy(raw, "tax.yaml")

    assert str(info.value).startswith(f"tax.yaml: {entry}: needs")


def test_load_taxonomy_names_an_unreadable_file(tmp_path):
    missing = tmp_path / "finnes-ikke.yaml"

    with pytest.raises(TaxonomyError, match="cannot read taxonomy"):
        load_taxonomy(missing)


def test_load_taxonomy_rejects_a_file_without_categories(tmp_path):
    path = tmp_path / "tax.yaml"
    path.write_text("taxonomy: tom\nlanguage: nb\n", encoding="utf-8")

    with pytest.raises(TaxonomyError, match=str(path)):
        load_taxonomy(path)
