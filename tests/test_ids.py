"""Tests for pipeline.ids: ids and constants the stages share, as the outputs spell them."""
import json
from pathlib import Path

from pipeline.ids import EMERGENT, EMERGENT_NAME, GROUP_PREFIX, OUTLIER

SCHEMA = Path(__file__).resolve().parents[1] / "pipeline" / "schemas" / "insights.schema.json"


def test_outlier_is_hdbscans_noise_label():
    assert OUTLIER == -1


def test_the_schema_and_docs_use_the_same_words():
    assert json.dumps(EMERGENT) in SCHEMA.read_text(encoding="utf-8")
    assert f"`{GROUP_PREFIX}" in (SCHEMA.parents[2] / "README.md").read_text(encoding="utf-8")


def test_the_report_renderer_names_emergent_themes_as_the_stages_do():
    from pipeline import report_render

    assert (report_render.EMERGENT, report_render.EMERGENT_NAME) == (EMERGENT, EMERGENT_NAME)
