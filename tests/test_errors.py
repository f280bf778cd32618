"""Tests for pipeline.errors: one base class for every error innsikt expects."""
import pytest

from pipeline.errors import InnsiktError
from pipeline.params import ParamsError, load_params
from pipeline.records import CARDS, SchemaError, read_table
from pipeline.taxonomy import LabelError, TaxonomyError


@pytest.mark.parametrize("error", [ParamsError, SchemaError, TaxonomyError, LabelError])
def test_module_errors_are_innsikt_errors_and_value_errors(error):
    assert issubclass(error, InnsiktError) and issubclass(error, ValueError)


def test_one_except_clause_catches_errors_of_different_modules(tmp_path):
    (tmp_path / "params.yaml").write_text("nope: 1\n", encoding="utf-8")
    caught = []
    for fail in (lambda: load_params(tmp_path / "params.yaml"), lambda: read_table(tmp_path / "no.parquet", CARDS)):
        try:
            fail()
        except InnsiktError as exc:
            caught.append(type(exc))
    assert caught == [ParamsError, SchemaError]
