"""Tests for pipeline.language: marker words of the two written standards."""
from __future__ import annotations

from pipeline.language import detect_language, marker_balance


def test_marker_balance_counts_words_of_one_standard_only():
    assert marker_balance("Eg veit ikkje kva vi skal gjere") > 0
    assert marker_balance("Jeg vet ikke hva vi skal gjøre") < 0
    assert marker_balance("Vi skal se") == 0


def test_marker_balance_can_leave_word_endings_out():
    # "-ane" ends nynorsk plurals, and some rare bokmål words by chance.
    assert marker_balance("skopolamin fra herbane") == 0
    assert marker_balance("skopolamin fra herbane", endings=False) == -1


def test_german_is_not_norwegian():
    assert detect_language("Jeder muss selbst entscheiden, statt zu warten").code == "de"
