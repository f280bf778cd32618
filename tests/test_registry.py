import pandas as pd
import pytest

from pipeline import registry
from pipeline.registry import Registry, RegistryError, Topic, match

SETTINGS = {"min_overlap": 0.3, "min_centroid_similarity": 0.95, "merge_share": 0.5, "keep_labels": True}
EAST, NORTH, WEST = (1.0, 0.0), (0.0, 1.0), (-1.0, 0.0)


def theme(theme_id, cards, centroid=EAST, label=None, status="active"):
    return Topic(theme_id, label or f"label of {theme_id}", tuple(sorted(cards)), centroid, status)


def cards(prefix, n):
    return [f"{prefix}{i:02d}" for i in range(n)]


def run(clusters, previous, centroids=None):
    centroids = centroids or {c: EAST for c in clusters}
    return match(clusters, centroids, {c: f"new label {c}" for c in clusters}, previous, **SETTINGS)


def changes_by_id(result):
    return {row.theme_id: row for row in result.changes.itertuples()}


def test_first_run_gives_every_cluster_a_new_id_from_its_members():
    result = run({0: cards("a", 5), 1: cards("b", 4)}, Registry())
    again = run({7: cards("b", 4), 3: cards("a", 5)}, Registry())
    assert result.theme_ids[0] == again.theme_ids[3] and result.theme_ids[1] == again.theme_ids[7]
    assert set(result.changes["change"]) == {"new"} and result.labels == {}


def test_grown_shrunk_and_unchanged_themes_keep_id_and_label():
    previous = Registry((theme("theme-a", cards("a", 10)), theme("theme-b", cards("b", 10)),
                         theme("theme-c", cards("c", 6))))
    result = run({0: cards("a", 12), 1: cards("b", 8), 2: cards("c", 6)}, previous)
    assert result.theme_ids == {0: "theme-a", 1: "theme-b", 2: "theme-c"}
    assert result.labels[0] == "label of theme-a"
    kinds = {theme_id: row.change for theme_id, row in changes_by_id(result).items()}
    assert kinds == {"theme-a": "grown", "theme-b": "shrunk", "theme-c": "unchanged"}
    assert changes_by_id(result)["theme-a"].size_before == 10 and changes_by_id(result)["theme-a"].size_after == 12


def test_assignment_is_one_to_one_and_a_split_part_is_new():
    previous = Registry((theme("theme-a", cards("a", 20)),))
    result = run({0: cards("a", 20)[:14], 1: cards("a", 20)[14:]}, previous)
    assert result.theme_ids[0] == "theme-a" and result.theme_ids[1] != "theme-a"
    split = changes_by_id(result)[result.theme_ids[1]]
    assert split.change == "new" and list(split.split_from) == ["theme-a"]


def test_merged_and_retired_themes():
    previous = Registry((theme("theme-a", cards("a", 10)), theme("theme-b", cards("b", 4)),
                         theme("theme-gone", cards("g", 5), centroid=NORTH)))
    result = run({0: cards("a", 10) + cards("b", 4)}, previous)
    rows = changes_by_id(result)
    assert rows["theme-b"].change == "merged" and rows["theme-b"].merged_into == "theme-a"
    assert rows["theme-gone"].change == "retired" and rows["theme-gone"].size_after == 0
    statuses = {t.theme_id: t.status for t in result.registry.themes}
    assert statuses == {"theme-a": "active", "theme-b": "retired", "theme-gone": "retired"}
    # Retired ids are never handed out again, and retired themes are not matched.
    later = run({0: cards("g", 5)}, result.registry, {0: NORTH})
    assert later.theme_ids[0] not in statuses


def test_a_theme_whose_cards_were_all_replaced_matches_by_centroid():
    previous = Registry((theme("theme-a", cards("old", 5), centroid=EAST),
                         theme("theme-w", cards("w", 5), centroid=WEST)))
    result = run({0: cards("new", 5)}, previous, {0: (0.99, 0.141)})
    assert result.theme_ids[0] == "theme-a"
    far = run({0: cards("new", 5)}, previous, {0: NORTH})
    assert far.theme_ids[0] not in ("theme-a", "theme-w")


def test_a_rerun_reports_the_previous_changes_again():
    first = run({0: cards("a", 10)}, Registry((theme("theme-a", cards("a", 8)),)))
    rerun = run({0: cards("a", 10)}, first.registry)
    assert rerun.changes.equals(first.changes) and rerun.registry == first.registry
    assert first.changes["change"].tolist() == ["grown"]


def test_registry_round_trips_through_canonical_json(tmp_path):
    result = run({0: cards("a", 10), 1: cards("b", 5)}, Registry((theme("theme-b", cards("b", 6)),)))
    path = tmp_path / "themes.json"
    path.write_text(registry.dumps(result.registry), encoding="utf-8")
    loaded = registry.load(path)
    assert loaded == result.registry
    assert registry.dumps(loaded) == path.read_text(encoding="utf-8")
    assert registry.load(tmp_path / "absent.json") == Registry()


@pytest.mark.parametrize("text, problem", [
    ("{not json", "cannot read theme registry"),
    ('{"format": 99, "themes": []}', "format=99"),
    ('{"format": 1, "themes": [{"theme_id": "t"}]}', "theme 1"),
    ('{"format": 1, "themes": [], "changes": [{"x": 1}]}', "changes"),
])
def test_a_broken_registry_is_a_clear_error(tmp_path, text, problem):
    path = tmp_path / "themes.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RegistryError, match=problem) as err:
        registry.load(path)
    assert str(path) in str(err.value)


def test_changes_frame_has_the_record_schema():
    from pipeline.records import THEME_CHANGES

    result = run({0: cards("a", 3)}, Registry())
    assert list(result.changes.columns) == THEME_CHANGES.names
    assert isinstance(result.changes, pd.DataFrame)
