"""Tests for pipeline.records' file writers that are not covered with the stages that use them."""
from __future__ import annotations

import codecs
import csv
import io

import pytest

from pipeline.records import spreadsheet_safe, write_csv


@pytest.mark.parametrize("value, written", [
    ('=HYPERLINK("http://x.example","klikk")', '\'=HYPERLINK("http://x.example","klikk")'),
    ("+47 stemmer", "'+47 stemmer"), ("-budsjett", "'-budsjett"), ("@sum", "'@sum"), ("\tinnrykk", "'\tinnrykk"),
    ("\rlinje", "'\rlinje"), ("-3", "'-3"), ("Samhandling", "Samhandling"), ("", ""), ("a=b", "a=b"),
    (-3, -3), (2.5, 2.5), (0, 0),
], ids=repr)
def test_spreadsheet_safe_prefixes_text_a_spreadsheet_would_run_and_leaves_numbers(value, written):
    assert spreadsheet_safe(value) == written


def test_write_csv_is_utf8_with_a_bom_and_neutralises_every_text_cell(tmp_path):
    write_csv([["verksted", "kort"], ["=1+1", 4], ["Tromsø", -2]], tmp_path / "x.csv")

    raw = (tmp_path / "x.csv").read_bytes()
    assert raw.startswith(codecs.BOM_UTF8)
    assert list(csv.reader(io.StringIO(raw.decode("utf-8-sig")))) == [["verksted", "kort"], ["'=1+1", "4"],
                                                                        ["Tromsø", "-2"]]


def test_write_bytes_publishes_the_whole_file_and_leaves_no_temp_file(tmp_path):
    from pipeline.records import write_bytes

    target = tmp_path / "plots" / "map.png"
    write_bytes(b"\x89PNG first", target)
    write_bytes(b"\x89PNG second", target)
    assert target.read_bytes() == b"\x89PNG second"
    assert [p.name for p in target.parent.iterdir()] == ["map.png"]
