"""Tests for pipeline.norwegian: the word lists and lexicon lookups that repair and keywords share."""
from __future__ import annotations

import re

from pipeline import norwegian
from pipeline.norwegian import (
    CONTENT_WORDS,
    TOKEN_PATTERN,
    bokmal_forms,
    compound_reading,
    nynorsk_word,
    reading,
    readings,
    stop_words,
)


def test_stop_words_cover_both_standards_but_never_content_words():
    words = stop_words()
    assert {"og", "ikke", "ikkje", "som"} <= words
    assert not CONTENT_WORDS & words


def test_readings_list_every_class_and_reading_picks_the_commonest_lemma():
    assert readings("dreper") == (("noun", "drep"), ("verb", "drepe"))
    assert reading("dreper") == ("verb", "drepe")  # the commoner lemma
    assert reading("test") == ("noun", "test")  # a tie goes to the earlier word class
    assert reading("siloene") == ("noun", "silo")
    assert reading("xqzv") is None


def test_a_form_far_commoner_than_its_lemma_stands_as_its_own_lemma():
    assert readings("data") == (("noun", "datum"),) and reading("data") == ("noun", "data")
    assert reading("ansatte") == ("adj", "ansatte")


def test_compound_reading_takes_the_longest_known_noun_at_the_end():
    assert compound_reading("kompetanseflukt") == ("noun", "kompetanseflukt")
    assert compound_reading("helseforetakene") == ("noun", "helseforetak")
    assert compound_reading("avstandar") is None  # "av" + "standar": parts under 3 letters do not count


def test_bokmal_forms_and_nynorsk_words_come_from_their_own_lists():
    assert "løsningene" in bokmal_forms()
    assert nynorsk_word("ikkje") and nynorsk_word("løysingane")
    assert not nynorsk_word("") and not nynorsk_word("12")


def test_the_token_pattern_takes_words_of_two_letters_or_more():
    assert re.findall(TOKEN_PATTERN, "Vi må ha 3 ting: å, øl og e5") == ["Vi", "må", "ha", "ting", "øl", "og"]


def test_word_classes_run_from_most_to_least_likely_to_name_a_theme():
    assert norwegian.WORD_CLASSES[0] == "noun"
