"""Regenerate the bad-input corpus in this folder: `python tests/bad_inputs/make_bad_inputs.py`.

Every file is named for what is wrong with it; README.md beside it lists the expected outcome,
and tests/test_bad_inputs.py checks each one. The output is deterministic (fixed XLSX
timestamps), so regenerating changes no bytes unless this script changed.
"""
from __future__ import annotations

import codecs
import csv
import io
import re
import zipfile
from datetime import datetime
from pathlib import Path
from xml.etree.ElementTree import canonicalize

from openpyxl import Workbook

HERE = Path(__file__).resolve().parent
FIXED_TIME = datetime(2026, 1, 1)

# Six ordinary cards from one workshop: enough that "fewer than 5 cards" does not fire.
CARDS = [
    ("g1", "Budsjettene er ettårige og stopper langsiktige satsinger"),
    ("g1", "Vi må få lov til å prøve og feile uten å bli straffet"),
    ("g2", "Ledere må tørre å gi ansatte mer ansvar"),
    ("g2", "Innbyggerne bør være med fra starten av prosjektet"),
    ("g3", "Sektorene snakker ikke sammen om felles brukere"),
    ("g3", "Regelverket gir mer rom enn vi tror"),
]


def csv_text(rows: list[list[str]], delimiter: str = ",") -> str:
    """Well-formed CSV (cells with the delimiter or quotes are quoted); broken files are spelled out by hand."""
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def xlsx_bytes(sheets: dict[str, list[list]], merged: dict[str, list[str]] | None = None,
               hidden: tuple[str, ...] = ()) -> bytes:
    """A workbook with these sheets (title -> rows), merged ranges per sheet and hidden sheets."""
    workbook = Workbook()
    for index, (title, rows) in enumerate(sheets.items()):
        sheet = workbook.active if index == 0 else workbook.create_sheet()
        sheet.title = title
        for row in rows:
            sheet.append(row)
        for cells in (merged or {}).get(title, []):
            sheet.merge_cells(cells)
        if title in hidden:
            sheet.sheet_state = "hidden"
    workbook.properties.created = workbook.properties.modified = FIXED_TIME
    buffer = io.BytesIO()
    workbook.save(buffer)
    # Zip entries and docProps/core.xml carry the time of writing: rewrite them with a fixed one.
    # The XML is canonicalised (C14N 2.0): openpyxl writes it otherwise when lxml is installed.
    fixed = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as source, \
            zipfile.ZipFile(fixed, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename.endswith((".xml", ".rels")):
                data = canonicalize(data.decode("utf-8")).encode("utf-8")
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", b"2026-01-01T00:00:00Z", data)
            target.writestr(zipfile.ZipInfo(info.filename, date_time=FIXED_TIME.timetuple()[:6]),
                            data, compress_type=zipfile.ZIP_DEFLATED)
    return fixed.getvalue()


def card_rows(workshop: str, cards=CARDS, with_ids: str | None = None) -> list[list[str]]:
    header = (["card_id"] if with_ids else []) + ["workshop_id", "group_id", "text"]
    rows = [header]
    for i, (group, text) in enumerate(cards, start=1):
        rows.append(([f"{with_ids}-{i}"] if with_ids else []) + [workshop, group, text])
    return rows


def long_card() -> str:
    sentences = [
        "Vi har mange gode ideer, men de blir liggende fordi ingen eier dem etter at prosjektet er slutt.",
        "Budsjettet gjelder bare ett år om gangen, og gevinsten kommer ofte i en annen sektor enn kostnaden.",
        "Ansatte som prøver noe nytt, risikerer mer enn de som gjør som før, og det merkes i hverdagen.",
        "Innbyggerne blir spurt for sent, når løsningen i praksis allerede er bestemt av fagfolkene.",
    ]
    text = ""
    while len(text) < 12_000:
        text += " ".join(sentences) + " "
    return text.strip()


def files() -> dict[str, bytes]:
    out: dict[str, bytes] = {}

    def text(name: str, content: str, encoding: str = "utf-8") -> None:
        out[name] = content.encode(encoding)

    # --- errors: cards -------------------------------------------------------------------
    text("missing_text_column.csv", csv_text([["card_id", "gruppe", "notat"], ["k1", "g1", "Mer tid"],
                                               ["k2", "g2", "Mindre byråkrati"]]))
    text("renamed_text_column_kommentar.csv", csv_text([["kort_id", "gruppe", "kommentar"], ["k1", "g1", "Mer tid"],
                                                         ["k2", "g2", "Mindre byråkrati"]], ";"))
    rows = card_rows("ws-duplikat", with_ids="dup")
    rows[4][0] = "dup-2"  # row 5 reuses the id of row 3
    text("duplicate_card_id.csv", csv_text(rows))
    text("duplicate_id_across_files_a.csv", csv_text(card_rows("ws-a", CARDS[:5], with_ids="kort")))
    text("duplicate_id_across_files_b.csv", csv_text(
        [["card_id", "workshop_id", "group_id", "text"], ["kort-6", "ws-b", "g1", "Mer tid til å tenke nytt"],
         ["kort-3", "ws-b", "g1", "Færre møter og mer handling"]]))
    same = csv_text(card_rows("ws-kopi"))
    text("same_content_twice_a.csv", same)
    text("same_content_twice_b.csv", same)
    text("same_workshop_twice.csv", csv_text(card_rows("ws-tromso")))
    out["same_workshop_twice.xlsx"] = xlsx_bytes({"Kort": card_rows("ws-tromso")})
    out["undecodable_bytes.csv"] = b"text\nMer tid\n\x81\x8d\x8f\x90\x9d\nTillit\n"  # invalid UTF-8 and cp1252
    out["binary_file.csv"] = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00\x00\x00\x01\x00\x08\x06"
                              b"\x00\x00\x00\x5c\x72\xa8\x66\x00\x00\x00\x00IEND\xaeB`\x82")
    text("broken_quoting_unclosed_quote.csv",
         'group,text\ng1,Mer tid\ng2,"Tillit mellom ledere og ansatte\ng3,Penger\ng4,Rom for feil\n')
    text("broken_quoting_stray_quote.csv", 'group,text\ng1,Mer tid\ng2,"Tillit" til ansatte\ng3,Penger\n')
    text("too_many_fields_unquoted_comma.csv",
         "group,text\ng1,Mer tid\ng2,Tillit, tid og rom\ng3,Penger\n")
    out["empty_file.csv"] = b""
    text("duplicate_column_names.csv", csv_text([["tekst", "text"], ["Mer tid", "Tillit"]]))
    text("jsonl_invalid_line.jsonl", '{"text": "Mer tid", "group": "g1"}\n'
                                     '{"text": "Tillit", "group": "g2"}\n'
                                     '{"text": "Penger", "group": "g3",}\n')
    text("jsonl_lone_surrogate.jsonl", '{"text": "Mer tid"}\n{"text": "Tillit \\ud83d til ansatte"}\n')
    text("xlsx_not_a_workbook.xlsx", csv_text([["text"], ["Mer tid"], ["Tillit"]]))  # a CSV renamed .xlsx
    # Mac Roman (old Mac Excel, some Mac editors): read as cp1252, "Følge" shows as "F¿lge".
    out["mac_roman_encoding.csv"] = csv_text([["tekst", "gruppe"], ["Mer tid", "g1"],
                                              ["Følgeforskning på tvers av sektorer", "g2"],
                                              ["Tillit", "g3"]]).encode("mac_roman")
    text("jsonl_text_not_a_string.jsonl", '{"text": "Mer tid", "group": "g1"}\n'
                                          '{"text": "Tillit", "group": "g2"}\n\n'
                                          '{"text": {"tittel": "Penger", "tekst": "Mer penger"}, "group": "g3"}\n')
    # Two exports named alike in two folders, without a workshop column: not one workshop "ark1".
    text("same_file_name_in_two_folders/hamar/ark1.csv", csv_text([["gruppe", "tekst"]] + [[g, t] for g, t in CARDS]))
    text("same_file_name_in_two_folders/molde/ark1.csv", csv_text([["gruppe", "tekst"]] + [
        [g, t + " i Molde"] for g, t in CARDS]))
    out["unsupported_extension.pdf"] = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"

    # --- errors: votes (checked against configs/taxonomy.yaml, with ws-alta's cards) -------------
    votes_header = ["workshop_id", "group_id", "theme_id", "choice"]
    text("votes_unknown_theme.csv", csv_text([votes_header, ["ws-alta", "g1", "siloer", "agree"],
                                              ["ws-alta", "g2", "budsjett-systemet", "agree"]]))
    text("votes_bad_choice.csv", csv_text([votes_header, ["ws-alta", "g1", "siloer", "agree"],
                                           ["ws-alta", "g2", "regelverk", "agree"]]))  # regelverk takes 1 or 2
    text("votes_empty_field.csv", csv_text([votes_header, ["ws-alta", "g1", "siloer", "agree"],
                                            ["ws-alta", "", "siloer", "disagree"]]))

    # --- errors: params and taxonomy -----------------------------------------------------------
    text("params_unknown_key.yaml", "ingest:\n  min_letters: 2\n  min_leters: 3\n")
    text("params_out_of_range.yaml", "cluster:\n  seed: 42\n  hdbscan:\n    min_cluster_size: 1\n")
    text("params_duplicate_key.yaml", "embed:\n  batch_size: 64\n  batch_size: 32\n")
    text("taxonomy_duplicate_ids.yaml",
         "taxonomy: test\ncategories:\n"
         "  - id: samhandling\n    name: Samhandling\n    themes:\n"
         "      - id: siloer\n        name: Siloer\n"
         "  - id: rammebetingelser\n    name: Rammebetingelser\n    themes:\n"
         "      - id: regelverk\n        name: Regelverk\n"
         "      - id: siloer\n        name: Siloer igjen\n")
    text("taxonomy_reserved_id_emergent.yaml",
         "taxonomy: test\ncategories:\n"
         "  - id: samhandling\n    name: Samhandling\n    themes:\n"
         "      - id: emergent\n        name: Nytt\n")

    # --- warnings ------------------------------------------------------------------------------
    out["xlsx_with_extra_sheets.xlsx"] = xlsx_bytes({
        "Kort": card_rows("ws-bergen"),
        "Notater": [["Notat"], ["Gruppe 3 gikk tidlig"], ["Husk å sende referat"]],
        "Ark3": [],  # an empty sheet is not worth a warning
    })
    # A formula saved by a program that does not compute formulas (openpyxl, some exports): no value.
    out["xlsx_formula_without_value.xlsx"] = xlsx_bytes({"Kort": card_rows("ws-stavanger") + [
        ["ws-stavanger", "g3", '=CONCATENATE("Mer tid ", "til å prøve")']]})
    # A hidden first sheet (a template), the cards on the second, visible one.
    out["xlsx_hidden_first_sheet.xlsx"] = xlsx_bytes(
        {"Mal": [["workshop_id", "group_id", "text"], ["ws-mal", "g0", "Skriv kortet her"]],
         "Kort": card_rows("ws-kristiansand")}, hidden=("Mal",))
    text("votes_extra_text_column.csv", csv_text([votes_header + ["tekst"],
                                                  ["ws-alta", "g1", "siloer", "agree", "Enig, vi jobber i siloer"],
                                                  ["ws-alta", "g2", "regelverk", "1", ""]]))
    text("long_card.csv", csv_text([["group", "text"]] + [[g, t] for g, t in CARDS[:3]]
                                   + [["g4", long_card()]] + [[g, t] for g, t in CARDS[3:]]))
    text("english_cards.csv", csv_text([["workshop_id", "group_id", "text"]] + [
        ["ws-oslo-intl", g, t] for g, t in [
            ("g1", "We need more time to try out new ideas"),
            ("g1", "Leaders should trust their employees with decisions"),
            ("g2", "The budget only lasts for one year at a time"),
            ("g2", "Ledere må tørre å gi ansatte mer ansvar"),
            ("g3", "Citizens should be involved from the very start"),
            ("g3", "Innbyggerne bør være med fra starten av prosjektet"),
        ]]))
    text("small_workshop.csv", csv_text(card_rows("ws-lillehammer", CARDS[:3])))
    text("votes_unknown_workshop.csv", csv_text([votes_header, ["ws-alta", "g1", "siloer", "agree"],
                                                 ["ws-alt", "g2", "siloer", "disagree"],
                                                 ["ws-alt", "g3", "regelverk", "1"]]))
    text("header_only.csv", "card_id,workshop_id,group_id,text\n")
    text("overlapping_workshop_exports_a.csv", csv_text(card_rows("ws-bodo")))
    edited = list(CARDS)
    edited[5] = ("g3", "Regelverket gir mer rom enn vi tror, særlig for forsøk")
    text("overlapping_workshop_exports_b.csv", csv_text(card_rows("ws-bodo", edited)))

    # --- odd but fine ----------------------------------------------------------------------------
    text("emoji_cards.csv", csv_text([["group", "text"]] + [
        ["g1", "Mer tid til å prøve ut ting 🙏"],
        ["g1", "Ledere som stoler på oss 💪👍"],
        ["g2", "Færre møter 😅 og mer handling"],
        ["g2", "👍👍"],  # no words: rejected with a reason, still counted
        ["g3", "Innbyggerne med fra start 🚀🇳🇴"],
        ["g3", "Budsjett over flere år ✅ (ikke bare ett)"],
        ["g3", "Rom for å feile 🤷‍♀️ uten straff"],
    ]))
    text("cp1252_excel.csv", csv_text([["Kort", "Gruppe", "Tekst"]] + [
        [f"cp-{i}", g, t.replace("ansvar", "ansvar – nå")] for i, (g, t) in enumerate(CARDS, start=1)], ";"),
         "cp1252")
    out["utf16_excel.csv"] = codecs.BOM_UTF16_LE + csv_text(
        [["tekst", "gruppe"]] + [[t, g] for g, t in CARDS], "\t").replace("\n", "\r\n").encode("utf-16-le")
    out["utf8_bom_semicolon.csv"] = codecs.BOM_UTF8 + csv_text(
        [["tekst", "gruppe", "type"]] + [[t, g, "ønske"] for g, t in CARDS], ";").encode("utf-8")
    # Group cells merged over the rows of each group, and the workshop over all rows.
    merged_rows = [["workshop_id", "group_id", "text"]] + [
        ["ws-narvik" if i == 0 else None, g if i % 2 == 0 else None, t] for i, (g, t) in enumerate(CARDS)]
    out["xlsx_merged_group_cells.xlsx"] = xlsx_bytes({"Kort": merged_rows},
                                                     merged={"Kort": ["A2:A7", "B2:B3", "B4:B5", "B6:B7"]})
    # Line and paragraph separators, NEL, vertical tab and form feed inside a line: still one card each.
    text("txt_unicode_line_separators.txt", "".join(line + "\n" for line in [
        "Mer tid\u2028til å prøve ut ting",
        "Tillit\u2029mellom ledere og ansatte",
        "Budsjett\x85over flere år",
        "Færre møter\x0bog mer handling",
        "Innbyggerne med\x0cfra start",
        "Rom for å feile uten straff",
    ]))
    # One group written four ways: g1, G1, g1 with a zero-width space, G1 with a soft hyphen.
    text("group_ids_case_and_invisible.csv", csv_text([["gruppe", "tekst"]] + [
        [g, t] for g, (_, t) in zip(["g1", "G1", "g1\u200b", "\u00adG1 ", "g2", "G2"], CARDS)]))
    # A workshop id a spreadsheet would run as a formula: read as text, written to CSVs neutralised.
    text("workshop_id_formula.csv", csv_text(card_rows('=HYPERLINK("http://x.example","klikk")')))
    # One column, no quoting: commas and semicolons are part of the text, not delimiters.
    text("single_column_unquoted_commas.csv", "tekst\n" + "".join(line + "\n" for line in [
        "Mer tid, mindre byråkrati",
        "Tillit, ikke kontroll",
        "Budsjett over flere år; ikke bare ett",
        "Ledere må tørre å gi ansatte mer ansvar",
        "Innbyggerne, brukerne og de ansatte må med fra start",
        "Rom for å feile, uten straff",
    ]))
    return out


def main() -> None:
    for name, data in sorted(files().items()):
        (HERE / name).parent.mkdir(parents=True, exist_ok=True)
        (HERE / name).write_bytes(data)
        print(f"{len(data):>7} bytes  {name}")


if __name__ == "__main__":
    main()
