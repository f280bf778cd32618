"""Tests for pipeline.repair: the kinds of æ/ø/å damage real OCR leaves (issue 16), and the text
repair must leave alone. The words are chosen here; none comes from a held-out set."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from pipeline import repair
from pipeline.params import NormaliseParams
from pipeline.repair import CONFUSION_COST, OCR_DAMAGE, repair_text

EXTERNAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "external"


def external_texts(folder: str, every: int) -> list[str]:
    path = EXTERNAL / folder / f"{folder}.csv"
    if not path.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{path} is missing; CI has ../shared beside the clone")
        pytest.skip(f"{path} is not here (shared data beside the repository)")
    with path.open(encoding="utf-8", newline="") as handle:
        return [row["text"] for row in csv.DictReader(handle)][::every]


# --- costs -------------------------------------------------------------------------------------


def test_confusion_costs_follow_the_measured_table():
    # The commonest damage is the cheapest; every measured confusion costs less than an unseen one.
    by_share = sorted(OCR_DAMAGE, key=OCR_DAMAGE.get, reverse=True)
    costs = [CONFUSION_COST[(read, letter)] for letter, read in by_share]
    assert costs == sorted(costs)
    assert max(costs) < CONFUSION_COST[("oe", "ø")] == CONFUSION_COST[("z", "æ")]


# --- the kinds of miss ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "damaged, repaired",
    [
        # a compound wordfreq lacks, damaged in one part ("møtene")
        ("Vi hadde mange fagmgtene pa huset", "Vi hadde mange fagmøtene på huset"),
        ("Innbyggermgtene pa biblioteket", "Innbyggermøtene på biblioteket"),
        # the lexicon lists the repair of a compound that splits into known parts ("mal" + ...)
        ("Maloppnaelsen er viktig pa sikt", "Måloppnåelsen er viktig på sikt"),
    ],
)
def test_compounds_are_repaired_in_their_parts(damaged, repaired):
    assert repair_text(damaged) == repaired


def test_a_compound_candidate_needs_other_damage_in_the_card():
    # Only a compound split vouches for "tjenesteløsningene": alone, the card may be right as written.
    assert repair_text("Tjenestelgsningene er gode") == "Tjenestelgsningene er gode"
    assert repair_text("Tjenestelgsningene er gode pa tvers") == "Tjenesteløsningene er gode på tvers"


@pytest.mark.parametrize(
    "damaged, repaired",
    [
        ("Det er starre behov for dette", "Det er større behov for dette"),  # ø read as a
        ("Vi ansker mer tid", "Vi ønsker mer tid"),
        ("Den ferste dagen var fin", "Den første dagen var fin"),  # ø read as e
    ],
)
def test_o_slash_read_as_a_or_e(damaged, repaired):
    assert repair_text(damaged) == repaired


@pytest.mark.parametrize(
    "damaged, repaired",
    [
        ("De fglgende punktene", "De følgende punktene"),
        ("Vi ma ha en felles sgknadslgsning", "Vi må ha en felles søknadsløsning"),
    ],
)
def test_two_damaged_letters_in_one_word(damaged, repaired):
    assert repair_text(damaged) == repaired


@pytest.mark.parametrize(
    "damaged, repaired",
    [
        ("Vi ber gjøre mer", "Vi bør gjøre mer"),
        ("Ingen tor gjøre det", "Ingen tør gjøre det"),
        ("Døra pa kontoret var last.", "Døra på kontoret var låst."),
        ("Vi starter pa nytt til varen", "Vi starter på nytt til våren"),
        ("Vi møtes igjen til hasten", "Vi møtes igjen til høsten"),
        ("Vi trenger en lesning pa dette", "Vi trenger en løsning på dette"),
        ("Det er verre enn for pa mange mater", "Det er verre enn før på mange måter"),
        ("Det gjelder pa tvers for var kommune", "Det gjelder på tvers for vår kommune"),
        ("Vi matte vente pa svar", "Vi måtte vente på svar"),
        # word classes from the lexicon: a modal wants an infinitive, a preposition no verb
        ("Møtet vil forega i kantina", "Møtet vil foregå i kantina"),
        ("Laget scoret 3 mal", "Laget scoret 3 mål"),
        ("Vi trenger bade tid og penger", "Vi trenger både tid og penger"),
    ],
)
def test_real_word_errors_are_decided_by_context(damaged, repaired):
    assert repair_text(damaged) == repaired


@pytest.mark.parametrize(
    "clean",
    [
        "Han ber om hjelp.",
        "Varen er utsolgt.",
        "Det var god lesning.",
        "Det var last på bilen.",
        "For meg er det viktig.",
        "Vi var der i fjor.",
        "Tor kom for sent.",
        "Vi skal bade og sole oss.",
        "Min far kom hjem.",
        "Han vil ikke.",
    ],
)
def test_real_words_stay_in_clean_text(clean):
    assert repair_text(clean) == clean


# --- what repair leaves alone --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Endringer i § 120 a",
        "Punkt 3 a og 4 b",
        "a) bedre rutiner b) mer tid",
        "Vedtak om rv. 7 og E 39",
        "Bompenger for prosjektet rv 13",
        "Jeder muss selbst entscheiden, statt zu warten",
        "jeder",
        "Die Kosten, deren Höhe niemand kennt",
        "Jede Gemeinde braucht einen Plan",
        "vinter-OL i 2022",
    ],
)
def test_codes_list_letters_and_other_languages_are_left_alone(text):
    assert repair_text(text) == text


def test_a_mixed_card_repairs_only_its_norwegian_words():
    assert repair_text("Vi sa «jeder für sich» pa møtet") == "Vi sa «jeder für sich» på møtet"


def test_nynorsk_is_repaired_with_nynorsk_words():
    damaged = "Eg kom fra byen i går, og det var ikkje lett"
    assert repair_text(damaged) == "Eg kom frå byen i går, og det var ikkje lett"
    clean = "Eg kom frå byen i går, og det var ikkje lett å vere der"
    assert repair_text(clean) == clean


def test_a_language_other_than_norwegian_is_never_repaired_even_when_given():
    assert repair_text("jeder deren statt", language="de") == "jeder deren statt"


# --- real text that must stay as it is (samples; bench/repair_bench.py runs all) -----------------


def test_german_polis_statements_are_unchanged():
    texts = external_texts("polis_klimarat_de", every=10)
    changed = [(text, repair_text(text)) for text in texts if repair_text(text) != text]
    assert changed == []


def test_storting_titles_are_unchanged():
    texts = external_texts("stortinget_cases_2019_2020", every=4)
    changed = [(text, repair_text(text)) for text in texts if repair_text(text) != text]
    assert changed == []


def test_nynorsk_dictionary_knows_nynorsk_forms():
    from pipeline.norwegian import nynorsk_word

    assert all(nynorsk_word(w) for w in ("ikkje", "løysingane", "frå", "vere"))
    assert not any(nynorsk_word(w) for w in ("fra", "lgsninger"))
    assert repair.known("ikkje", nynorsk=True, settings=NormaliseParams())
