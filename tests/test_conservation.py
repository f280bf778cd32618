"""Conservation is checked by the pipeline itself: a card lost or doubled between stages fails the run.

The whole pipeline runs through `innsikt run` (with the fake embedder, so it is quick); the map
stage's output is then tampered with, as a bug in a stage would, and the run must stop with one
clear line naming the card, exit code 1, and no report published.
"""
from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import FakeEmbedder
from pipeline import cli
from pipeline import embed as embed_stage
from pipeline import map as map_stage
from pipeline.records import CARD_MAP, read_table, write_table


def lose_one(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.iloc[1:]


def double_one(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([frame, frame.iloc[:1]], ignore_index=True)


@pytest.mark.parametrize("tamper", [lose_one, double_one], ids=["lost", "doubled"])
def test_a_card_lost_or_doubled_between_stages_fails_the_run_naming_the_card(tamper, small_corpus, tmp_path,
                                                                             monkeypatch):
    monkeypatch.setattr(embed_stage, "make_backend", lambda name, **_: FakeEmbedder())
    monkeypatch.setattr(map_stage, "make_backend", lambda name, **_: FakeEmbedder(), raising=False)
    real_map_run = map_stage.run
    tampered: list[str] = []

    def buggy_map_run(**kwargs):
        result = real_map_run(**kwargs)
        path = kwargs["out_dir"] / "cards.parquet"
        frame = read_table(path, CARD_MAP)
        tampered.append(frame["card_id"].iloc[0])
        write_table(tamper(frame), CARD_MAP, path)
        return result

    monkeypatch.setattr(map_stage, "run", buggy_map_run)
    (tmp_path / "params.yaml").write_text("", encoding="utf-8")

    result = CliRunner().invoke(cli.app, ["run", "--input", str(small_corpus), "--out", str(tmp_path / "out"),
                                          "--cache-dir", str(tmp_path / "cache"),
                                          "--params", str(tmp_path / "params.yaml")])

    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("innsikt: error: ")]
    assert len(errors) == 1 and "Traceback" not in result.output, (result.output, repr(result.exception))
    assert tampered and repr(tampered[0]) in errors[0]
    assert any(word in errors[0] for word in ("conservation", "without a mapping row", "duplicate"))
    assert not (tmp_path / "out" / "report" / "insights.json").exists()


def test_a_stage_input_with_a_card_twice_is_a_clean_error_naming_the_card(tmp_path):
    from conftest import normalised_cards
    from pipeline.records import NORMALISED, SchemaError

    path = tmp_path / "cards.parquet"
    write_table(normalised_cards(["Mer tid", "Tillit", "Mer tid"], ids=["k1", "k2", "k1"]), NORMALISED, path)

    with pytest.raises(SchemaError, match=r"cards.parquet: duplicate card id 'k1' \(2 rows\); expected one row per card"):
        read_table(path, NORMALISED)
