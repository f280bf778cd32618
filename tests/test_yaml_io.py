"""Tests for pipeline.yaml_io: strict YAML reading shared by every config file."""
from __future__ import annotations

import pytest

from pipeline.yaml_io import read_yaml, yaml_line


class ConfigError(ValueError):
    pass


def write(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_the_data_and_the_text(tmp_path):
    data, text = read_yaml(write(tmp_path, "a: 1\nb: [x, y]\n"), ConfigError, "config")
    assert data == {"a": 1, "b": ["x", "y"]} and text.startswith("a: 1")


def test_a_key_given_twice_is_an_error_naming_both_lines(tmp_path):
    with pytest.raises(ConfigError, match=r"config.yaml, line 3, column 3: cannot read config: .*'k' appears twice "
                                          r"\(first on line 2\)"):
        read_yaml(write(tmp_path, "s:\n  k: 1\n  k: 2\n"), ConfigError, "config")


def test_invalid_yaml_names_the_line_and_column(tmp_path):
    with pytest.raises(ConfigError, match=r"line 2, column \d+: cannot read config: invalid YAML"):
        read_yaml(write(tmp_path, "a: [1, 2\nb: 3\n"), ConfigError, "config")


def test_an_unreadable_file_is_the_given_error(tmp_path):
    with pytest.raises(ConfigError, match=r"missing.yaml: cannot read config"):
        read_yaml(tmp_path / "missing.yaml", ConfigError, "config")
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("a: bl\xe5\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1.yaml: cannot read config"):
        read_yaml(bad, ConfigError, "config")


def test_yaml_line_finds_keys_and_list_items():
    text = "ingest:\n  min_letters: 2\nlist:\n  - a\n  - b\n"
    assert yaml_line(text, ("ingest", "min_letters")) == 2
    assert yaml_line(text, ("list", 1)) == 5
    assert yaml_line(text, ("ingest", "nothing")) == 1  # the deepest entry found
    assert yaml_line("a: [", ("a",)) is None
