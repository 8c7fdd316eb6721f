"""The report exports: terminal table, CSV, XLSX and DHIS2 (docs/architecture.md, "Indicators" and "Privacy invariants").

The report below is built by hand. Its hidden cells hold values (1, 2, 3, 4, 7, 9, 13, 15, 19,
35, 40) that no shown number, estimate or percentage uses, so finding one of them where a cell
is read means a hidden value leaked.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import json
import re
import subprocess
import sys
import unicodedata
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from babel.messages.pofile import read_po
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet

from content.i18n import LOCALE_DIR, Catalogs, load_catalogs
from referrals.exports import (
    DEFAULT_DHIS2_MAPPING,
    Dhis2Mapping,
    ExportError,
    csv_bytes,
    load_dhis2_mapping,
    to_csv,
    to_dhis2,
    to_table,
    to_xlsx,
)
from referrals.labels import period_label
from referrals.periods import Period
from referrals.report import INDICATORS, UNKNOWN_COMMUNE, CommuneLine, PeriodReport, Progress, Scope, ScopeKind
from referrals.tables import Cell, CellState, ProtectedTable

S, SMALL, MASKED = CellState.SHOWN, CellState.SMALL, CellState.MASKED
BINH_LU = CommuneLine(3390, "Xã Bình Lư", 12, "Tỉnh Lai Châu")
NAM_THANH_MIEN = CommuneLine(11284, "Xã Nam Thanh Miện", 31, "Thành phố Hải Phòng")
UNKNOWN = CommuneLine(UNKNOWN_COMMUNE, "", 0, "")
PLACE_NAMES = ("Xã Bình Lư", "Tỉnh Lai Châu", "Xã Nam Thanh Miện", "Thành phố Hải Phòng")
# Produced at 03:00 on 5 July 2026 in Vietnam, which is still 4 July in UTC.
GENERATED = dt.datetime(2026, 7, 4, 20, 0, tzinfo=dt.UTC)


def c(value: int, state: CellState = S) -> Cell:
    return Cell(value, state)


def make_report(period: str = "2026-H1", scope: Scope | None = None) -> PeriodReport:
    """Three rows (two communes and the unknown one), shown, small and masked cells; the four
    indicators reached, informed, connected, counselled."""
    people = ProtectedTable(
        body=(
            (c(12), c(20), c(3, SMALL), c(33)),
            (c(25), c(4, SMALL), c(10), c(2, SMALL)),
            (c(6), c(16), c(0), c(0)),
        ),
        column_totals=(c(43), c(40, MASKED), c(13, MASKED), c(35, MASKED)),
    )
    progress = (
        (Progress(45, 70.0, 26.7), Progress(None, 20.0, None), Progress(45, 70.0, None), Progress(None, 20.0, None)),
        (Progress(30, 80.0, 83.3), Progress(60, 20.0, None), Progress(30, 80.0, 33.3), Progress(None, 20.0, None)),
        (Progress(None, 70.0, None),) * 4,
    )
    issued = ProtectedTable(
        body=((c(17), c(2, SMALL)), (c(11), c(5)), (c(0), c(0))),
        row_totals=(c(19, MASKED), c(16), c(0)),
        column_totals=(c(28), c(7, MASKED)),
        grand_total=c(35, MASKED),
    )
    redeemed = ProtectedTable(
        body=((c(8), c(1, SMALL)), (c(6), c(0)), (c(0), c(0))),
        row_totals=(c(9, MASKED), c(6), c(0)),
        column_totals=(c(14), c(1, SMALL)),
        grand_total=c(15, MASKED),
    )
    return PeriodReport(
        period=Period.parse(period),
        scope=scope or Scope(ScopeKind.ALL),
        generated_at=GENERATED,
        threshold=5,
        communes=(BINH_LU, NAM_THANH_MIEN, UNKNOWN),
        people=people,
        progress=progress,
        total_progress=(Progress(75, 70.0, 57.3), Progress(60, 20.0, None), Progress(75, 70.0, None), Progress(None, 20.0, None)),
        service_types=("hiv_testing", "employment"),
        issued=issued,
        redeemed=redeemed,
        uptake=(None, 37.5, None),
        total_uptake=None,
    )


def _cells(table: ProtectedTable) -> list[Cell]:
    found = [cell for row in table.body for cell in row]
    found += [*(table.row_totals or ()), *(table.column_totals or ())]
    return found + ([table.grand_total] if table.grand_total else [])


def hidden_values(report: PeriodReport) -> set[int]:
    tables = (report.people, report.issued, report.redeemed)
    return {cell.value for table in tables for cell in _cells(table) if cell.hidden}


def shown_numbers(report: PeriodReport) -> set[float]:
    found: set[float] = set()
    for table in (report.people, report.issued, report.redeemed):
        found |= {cell.value for cell in _cells(table) if not cell.hidden}
    for line in (*report.progress, report.total_progress):
        for progress in line:
            found |= {x for x in (progress.estimate, progress.percent, progress.target_percent) if x is not None}
    return found | {x for x in (*report.uptake, report.total_uptake) if x is not None}


REPORT = make_report()
HIDDEN = hidden_values(REPORT)


@pytest.fixture(scope="module")
def catalogs() -> Catalogs:
    return load_catalogs()


def test_the_fixture_keeps_hidden_values_apart() -> None:
    """No shown number of the test report equals a hidden value, so a leak cannot hide behind one."""
    assert HIDDEN == {1, 2, 3, 4, 7, 9, 13, 15, 19, 35, 40}
    assert not HIDDEN & shown_numbers(REPORT)


# --- catalogs ----------------------------------------------------------------------------------


def test_catalogs_load_with_the_report_messages(catalogs: Catalogs) -> None:
    """load_catalogs() still loads, and reports.po holds the same keys in vi and en, none of antam.po."""
    keys = {}
    for locale in ("vi", "en"):
        folder = LOCALE_DIR / locale / "LC_MESSAGES"
        with (folder / "reports.po").open("rb") as handle:
            keys[locale] = {m.id for m in read_po(handle) if m.id}
        with (folder / "antam.po").open("rb") as handle:
            assert not keys[locale] & {m.id for m in read_po(handle) if m.id}
    assert keys["vi"] == keys["en"]
    assert all(isinstance(key, str) and key.startswith("report.") for key in keys["vi"])
    assert keys["vi"] <= catalogs.keys()


def test_report_wording_is_not_stigmatising(catalogs: Catalogs) -> None:
    """The report's Vietnamese uses the plans' neutral words."""
    for key, text in catalogs.messages["vi"].items():
        if key.startswith("report."):
            for word in ("mại dâm", "tệ nạn", "gái gọi", "sa ngã", "hoàn lương", "đối tượng"):
                assert word not in text.lower(), key


@pytest.mark.parametrize(
    ("period", "vi", "en"),
    [
        ("2026-03", "Tháng 3/2026", "March 2026"),
        ("2026-H1", "6 tháng đầu năm 2026", "First half of 2026"),
        ("2026-H2", "6 tháng cuối năm 2026", "Second half of 2026"),
        ("2026", "Năm 2026", "Year 2026"),
    ],
)
def test_period_labels(catalogs: Catalogs, period: str, vi: str, en: str) -> None:
    """It names months, half-years and years as Vietnamese reports do, and in English."""
    assert period_label(Period.parse(period), catalogs, "vi") == vi
    assert period_label(Period.parse(period), catalogs, "en") == en


# --- CSV ---------------------------------------------------------------------------------------


def read_csv(text: str) -> tuple[list[str], list[dict[str, str]]]:
    rows = list(csv.reader(io.StringIO(text, newline="")))
    return rows[0], [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def test_csv_rows_and_hidden_cells(catalogs: Catalogs) -> None:
    """It writes one row per commune and a total row, and hidden cells as '<5' or '*', never their values."""
    header, rows = read_csv(to_csv(REPORT, catalogs))
    assert header[:7] == [
        "Tỉnh, thành phố",
        "Mã xã",
        "Xã, phường",
        "Số người được tiếp cận",
        "Ước tính quần thể (tiếp cận)",
        "Tỷ lệ tiếp cận (%)",
        "Chỉ tiêu tiếp cận (%)",
    ]
    assert header[-1] == "Tỷ lệ sử dụng (%)"
    assert "Số mã giới thiệu đã cấp: Xét nghiệm HIV" in header
    assert "Số mã đã sử dụng: tổng" in header
    # Only the report's own service types get columns.
    assert not any("Học nghề" in name for name in header)
    assert len(header) == 3 + 4 * len(INDICATORS) + 2 * (len(REPORT.service_types) + 1) + 1

    binh_lu, nam_thanh_mien, unknown, total = rows
    assert binh_lu["Mã xã"] == "03390" and binh_lu["Tỉnh, thành phố"] == "Tỉnh Lai Châu"
    assert binh_lu["Số người được tiếp cận"] == "12"
    assert binh_lu["Tỷ lệ tiếp cận (%)"] == "26.7"
    assert binh_lu["Chỉ tiêu tiếp cận (%)"] == "70.0"
    assert binh_lu["Số người được kết nối dịch vụ"] == "<5"
    assert binh_lu["Tỷ lệ kết nối dịch vụ (%)"] == ""
    assert binh_lu["Ước tính quần thể (cung cấp thông tin)"] == ""
    assert binh_lu["Số mã giới thiệu đã cấp: Việc làm"] == "<5"
    assert binh_lu["Số mã giới thiệu đã cấp: tổng"] == "*"
    assert binh_lu["Số mã đã sử dụng: tổng"] == "*"
    assert binh_lu["Tỷ lệ sử dụng (%)"] == ""
    assert nam_thanh_mien["Số người được cung cấp thông tin"] == "<5"
    assert nam_thanh_mien["Tỷ lệ sử dụng (%)"] == "37.5"
    assert unknown["Xã, phường"] == "Chưa rõ xã" and unknown["Mã xã"] == ""
    assert total["Tỉnh, thành phố"] == "Tổng"
    assert total["Số người được tiếp cận"] == "43"
    assert total["Số người được cung cấp thông tin"] == "*"
    assert total["Số mã đã sử dụng: Việc làm"] == "<5"
    assert total["Số mã đã sử dụng: tổng"] == "*"
    for row in rows:
        for name, field in row.items():
            assert field not in {str(value) for value in HIDDEN}, (row["Xã, phường"], name)


def test_csv_bytes_have_a_bom(catalogs: Catalogs) -> None:
    """csv_bytes is UTF-8 with a byte order mark, so Excel reads the Vietnamese letters."""
    data = csv_bytes(REPORT, catalogs)
    assert data.startswith(codecs.BOM_UTF8)
    assert data.decode("utf-8-sig") == to_csv(REPORT, catalogs)
    assert "Xã Bình Lư".encode() in data


def test_csv_neutralises_names_that_look_like_formulas(catalogs: Catalogs) -> None:
    """A name starting with '=' is written so that a spreadsheet does not run it."""
    odd = replace(REPORT, communes=(replace(BINH_LU, name="=HYPERLINK(1)"), NAM_THANH_MIEN, UNKNOWN))
    _, rows = read_csv(to_csv(odd, catalogs))
    assert rows[0]["Xã, phường"] == "'=HYPERLINK(1)"


# --- XLSX --------------------------------------------------------------------------------------


def read_xlsx(data: bytes) -> Worksheet:
    sheet = load_workbook(io.BytesIO(data)).worksheets[0]
    assert isinstance(sheet, Worksheet)
    return sheet


def header_index(sheet: Worksheet, row: int = 6) -> dict[str, int]:
    return {cell.value: cell.column for cell in sheet[row] if isinstance(cell.value, str)}


def test_xlsx_layout_and_numbers(catalogs: Catalogs) -> None:
    """It writes a title block, bold wrapped Vietnamese headers, a frozen pane, numbers as numbers."""
    data = to_xlsx(REPORT, catalogs)
    sheet = read_xlsx(data)
    assert sheet["A1"].value == "Báo cáo kết quả tiếp cận, cung cấp thông tin và kết nối dịch vụ"
    assert sheet["A2"].value == "Phạm vi: Tất cả các xã, phường"
    assert sheet["A3"].value == "Kỳ báo cáo: 6 tháng đầu năm 2026"
    assert sheet["A4"].value == "Ngày lập báo cáo: 05/07/2026"
    assert sheet.freeze_panes == "D7"
    assert sheet.page_setup.orientation == "landscape" and sheet.print_title_rows == "$6:$6"
    columns = header_index(sheet)
    assert {"Số người được tiếp cận", "Tỷ lệ tiếp cận (%)", "Ước tính quần thể (tiếp cận)"} <= columns.keys()
    assert {"Số mã giới thiệu đã cấp: Xét nghiệm HIV", "Số mã đã sử dụng: tổng", "Tỷ lệ sử dụng (%)"} <= columns.keys()
    header = sheet.cell(row=6, column=columns["Số người được tiếp cận"])
    assert header.font.b and header.alignment.wrap_text
    assert (sheet.column_dimensions["C"].width or 0) >= 20

    def at(row: int, name: str) -> Any:
        return sheet.cell(row=row, column=columns[name])

    assert at(7, "Xã, phường").value == "Xã Bình Lư"
    assert at(7, "Mã xã").value == "03390"
    assert at(7, "Số người được tiếp cận").value == 12
    assert at(7, "Tỷ lệ tiếp cận (%)").value == pytest.approx(26.7)
    assert at(7, "Tỷ lệ tiếp cận (%)").number_format == "0.0"
    assert at(7, "Ước tính quần thể (tiếp cận)").value == 45
    assert at(7, "Số người được kết nối dịch vụ").value == "<5"
    assert at(7, "Tỷ lệ kết nối dịch vụ (%)").value == "—"
    assert at(7, "Số mã giới thiệu đã cấp: tổng").value == "*"
    assert at(8, "Số người được cung cấp thông tin").value == "<5"
    assert at(8, "Tỷ lệ sử dụng (%)").value == pytest.approx(37.5)
    assert at(9, "Xã, phường").value == "Chưa rõ xã"
    assert at(10, "Tỉnh, thành phố").value == "Tổng"
    assert at(10, "Số người được tiếp cận").value == 43
    assert at(10, "Số người được tiếp cận").font.b
    assert at(10, "Số người được cung cấp thông tin").value == "*"
    assert at(10, "Số mã đã sử dụng: Việc làm").value == "<5"

    notes = [cell.value for cell in sheet["A"][10:] if isinstance(cell.value, str)]
    assert notes[0] == "Ghi chú"
    assert any(note.startswith("<5: có từ 1 đến 4 người") for note in notes)
    assert any(note.startswith("*:") for note in notes)
    assert any("nhận gói hỗ trợ tối thiểu" in note for note in notes)
    assert any("ít nhất một mã giới thiệu đã được sử dụng" in note for note in notes)
    assert any("mở ít nhất một nội dung thông tin" in note for note in notes)
    assert any("một lần trong mỗi kỳ báo cáo" in note for note in notes)
    assert any("không chứa thông tin cá nhân" in note for note in notes)


def test_xlsx_never_holds_a_hidden_value_or_a_formula(catalogs: Catalogs) -> None:
    """It writes hidden cells as '<5' or '*' and never their values, and writes no formula."""
    data = to_xlsx(REPORT, catalogs)
    sheet = read_xlsx(data)
    for row in sheet.iter_rows(min_row=7, max_row=10):
        for cell in row:
            assert cell.data_type != "f"
            if isinstance(cell.value, int | float):
                assert cell.value not in HIDDEN, cell.coordinate
            if isinstance(cell.value, str):
                assert cell.value not in {str(value) for value in HIDDEN}, cell.coordinate
    for row in sheet.iter_rows():
        for cell in row:
            assert not (isinstance(cell.value, str) and cell.value.startswith("=")), cell.coordinate
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in archive.namelist():
            if name.startswith("xl/worksheets/"):
                assert b"<f>" not in archive.read(name) and b"<f " not in archive.read(name)


def test_xlsx_writes_a_name_like_a_formula_as_text(catalogs: Catalogs) -> None:
    """A commune name starting with '=' is stored as text, not as a formula."""
    odd = replace(REPORT, communes=(replace(BINH_LU, name="=SUM(1,2)"), NAM_THANH_MIEN, UNKNOWN))
    data = to_xlsx(odd, catalogs)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert b"<f>" not in archive.read("xl/worksheets/sheet1.xml")
    assert read_xlsx(data)["C7"].data_type == "s"


def test_xlsx_properties_name_no_user(catalogs: Catalogs) -> None:
    """The workbook's properties carry the title and 'An Tâm', nothing about who exported it."""
    properties = load_workbook(io.BytesIO(to_xlsx(REPORT, catalogs))).properties
    assert properties.title == "Báo cáo kết quả tiếp cận, cung cấp thông tin và kết nối dịch vụ"
    assert properties.creator == "An Tâm"
    assert properties.lastModifiedBy in (None, "An Tâm")


# --- terminal table ----------------------------------------------------------------------------


def columns_of(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def test_table_reads_as_a_report(catalogs: Catalogs) -> None:
    """It prints the title, one block per indicator with estimate, % and target, referrals, totals, legend."""
    text = to_table(REPORT, catalogs)
    lines = text.splitlines()
    assert lines[:4] == [
        "Báo cáo kết quả tiếp cận, cung cấp thông tin và kết nối dịch vụ",
        "Phạm vi: Tất cả các xã, phường",
        "Kỳ báo cáo: 6 tháng đầu năm 2026",
        "Ngày lập báo cáo: 05/07/2026",
    ]
    for heading in ("Số người được tiếp cận", "Số người được cung cấp thông tin", "Số người được kết nối dịch vụ"):
        assert heading in lines
    reached = lines.index("Số người được tiếp cận")
    headers = ["Xã, phường", "Số người", "Ước tính quần thể", "Tỷ lệ (%)", "Chỉ tiêu (%)", "Kết quả"]
    assert columns_of(lines[reached + 1]) == headers
    assert columns_of(lines[reached + 3]) == ["Xã Bình Lư (Tỉnh Lai Châu)", "12", "45", "26,7", "70,0", "chưa đạt"]
    nam_thanh_mien = ["Xã Nam Thanh Miện (Thành phố Hải Phòng)", "25", "30", "83,3", "80,0", "đạt"]
    assert columns_of(lines[reached + 4]) == nam_thanh_mien
    assert columns_of(lines[reached + 6]) == ["Tổng", "43", "75", "57,3", "70,0", "chưa đạt"]
    connected = lines.index("Số người được kết nối dịch vụ")
    assert columns_of(lines[connected + 3]) == ["Xã Bình Lư (Tỉnh Lai Châu)", "<5", "45", "—", "70,0", "—"]
    assert columns_of(lines[connected + 6]) == ["Tổng", "*", "75", "—", "70,0", "—"]

    issued = lines.index("Số mã giới thiệu đã cấp, theo loại dịch vụ")
    assert columns_of(lines[issued + 1]) == ["Xã, phường", "Xét nghiệm HIV", "Việc làm", "Tổng"]
    assert columns_of(lines[issued + 3]) == ["Xã Bình Lư (Tỉnh Lai Châu)", "17", "<5", "*"]
    redeemed = lines.index("Số mã đã sử dụng, theo loại dịch vụ")
    assert columns_of(lines[redeemed + 1])[-1] == "Tỷ lệ sử dụng (%)"
    assert columns_of(lines[redeemed + 4]) == ["Xã Nam Thanh Miện (Thành phố Hải Phòng)", "6", "0", "6", "37,5"]
    assert columns_of(lines[redeemed + 6]) == ["Tổng", "14", "<5", "*", "—"]
    assert "Học nghề" not in text

    summary = next(line for line in lines if line.startswith("Tổng cộng:"))
    assert summary.startswith("Tổng cộng: 43 người được tiếp cận, * người được cung cấp thông tin")
    legend = lines.index("Ghi chú:")
    notes = "\n".join(lines[legend:])
    assert "<5: có từ 1 đến 4 người" in notes and "*: số được ẩn thêm" in notes
    assert "một lần trong mỗi kỳ báo cáo" in notes


def test_table_never_shows_a_hidden_value(catalogs: Catalogs) -> None:
    """It prints hidden cells as '<5' or '*' and never their values, in any table or the totals line."""
    lines = to_table(REPORT, catalogs).splitlines()
    body = lines[4 : lines.index("Ghi chú:")]
    hidden = {str(value) for value in HIDDEN}
    for line in body:
        # "26,7" is one number in Vietnamese; a comma only ends a token before a space.
        for token in re.split(r"[\s;:()]+", line):
            assert token.rstrip(",.") not in hidden, line


def test_table_for_one_province_omits_the_province(catalogs: Catalogs) -> None:
    """Communes of a single province are named without it, and the scope's name heads the report."""
    report = replace(
        REPORT,
        scope=Scope(ScopeKind.PROVINCE, 12, "Tỉnh Lai Châu"),
        communes=(BINH_LU, replace(NAM_THANH_MIEN, province_code=12, province_name="Tỉnh Lai Châu"), UNKNOWN),
    )
    text = to_table(report, catalogs)
    assert "Phạm vi: Tỉnh Lai Châu" in text
    assert "Xã Bình Lư (" not in text and "\nXã Bình Lư " in text


# --- English -----------------------------------------------------------------------------------


def vietnamese_left(text: str) -> set[str]:
    """Letters with Vietnamese diacritics once the place names (data, not labels) are taken out."""
    for name in PLACE_NAMES:
        text = text.replace(name, "")
    return {ch for ch in text if not ch.isascii() and "LATIN" in unicodedata.name(ch, "")}


def test_english_exports_have_no_vietnamese_label(catalogs: Catalogs) -> None:
    """In English, every header, label and note is English; only place names stay Vietnamese."""
    table = to_table(REPORT, catalogs, "en")
    assert vietnamese_left(table) == set()
    assert "Reporting period: First half of 2026" in table and "Commune not known" in table
    csv_text = to_csv(REPORT, catalogs, "en")
    assert vietnamese_left(csv_text) == set()
    assert read_csv(csv_text)[0][3] == "People reached"
    sheet = read_xlsx(to_xlsx(REPORT, catalogs, "en"))
    texts = "\n".join(str(cell.value) for row in sheet.iter_rows() for cell in row if cell.value is not None)
    assert vietnamese_left(texts) == set()
    assert "Referral codes issued: HIV testing" in texts and "Notes" in texts
    assert sheet.title == "Report 2026-H1"


# --- DHIS2 -------------------------------------------------------------------------------------


def value_set(payload: dict[str, Any]) -> set[tuple[str, str, str | None, str]]:
    return {
        (v["dataElement"], v["orgUnit"], v.get("categoryOptionCombo"), v["value"]) for v in payload["dataValues"]
    }


def test_dhis2_default_mapping() -> None:
    """It sends each shown count per commune by code, with commune totals of referrals; hidden cells are left out."""
    export = to_dhis2(REPORT)
    payload = export.payload
    assert payload["period"] == "2026S1"
    assert "dataSet" not in payload
    assert payload["idScheme"] == payload["dataElementIdScheme"] == payload["orgUnitIdScheme"] == "CODE"
    assert value_set(payload) == {
        ("ANTAM_REACHED", "03390", None, "12"),
        ("ANTAM_INFORMED", "03390", None, "20"),
        ("ANTAM_COUNSELLED", "03390", None, "33"),
        ("ANTAM_REACHED", "11284", None, "25"),
        ("ANTAM_CONNECTED", "11284", None, "10"),
        ("ANTAM_REFERRALS_ISSUED", "11284", None, "16"),
        ("ANTAM_REFERRALS_REDEEMED", "11284", None, "6"),
    }
    assert all(isinstance(v["value"], str) for v in payload["dataValues"])
    # Bình Lư: connected, issued total, redeemed total; Nam Thanh Miện: informed, counselled.
    assert export.hidden_omitted == 5
    assert export.communes_omitted == () and export.service_types_omitted == ()
    assert not {v["value"] for v in payload["dataValues"]} & {str(value) for value in HIDDEN}
    json.dumps(payload)  # it is plain JSON


def test_dhis2_per_service_type_and_explicit_org_units() -> None:
    """With category option combos it sends per-type values; unmapped communes and types are reported."""
    mapping = Dhis2Mapping.model_validate(
        {
            "data_set": "dsAnTam0001",
            "id_scheme": "uid",
            "data_elements": {
                "reached": "deReached01",
                "informed": "deInformed1",
                "connected": "deConnect01",
                "issued": "deIssued001",
                "redeemed": "deRedeemed1",
            },
            "category_option_combos": {"hiv_testing": "cocHivTest1"},
            "org_units": {"03390": "ouBinhLu001"},
        }
    )
    export = to_dhis2(REPORT, mapping)
    assert export.payload["dataSet"] == "dsAnTam0001"
    assert "idScheme" not in export.payload
    assert value_set(export.payload) == {
        ("deReached01", "ouBinhLu001", None, "12"),
        ("deInformed1", "ouBinhLu001", None, "20"),
        ("deIssued001", "ouBinhLu001", "cocHivTest1", "17"),
        ("deRedeemed1", "ouBinhLu001", "cocHivTest1", "8"),
    }
    assert export.hidden_omitted == 1  # Bình Lư's connected count
    assert export.communes_omitted == (11284,)
    assert export.service_types_omitted == ("employment",)


@pytest.mark.parametrize(("period", "dhis2"), [("2026-03", "202603"), ("2026-H2", "2026S2"), ("2027", "2027")])
def test_dhis2_periods(period: str, dhis2: str) -> None:
    """It names the period as DHIS2 does for a month, a half-year and a year."""
    assert to_dhis2(make_report(period)).payload["period"] == dhis2


def test_default_mapping_uses_an_tams_codes() -> None:
    """The default mapping sends An Tâm's suggested codes and 5-digit commune codes."""
    assert DEFAULT_DHIS2_MAPPING.data_elements.redeemed == "ANTAM_REFERRALS_REDEEMED"
    assert DEFAULT_DHIS2_MAPPING.org_unit(3390) == "03390"


YAML_MAPPING = """\
# Nam Thanh Miện's DHIS2
data_set: KP_OUTREACH
data_elements:
  reached: KP_REACHED
  informed: KP_INFORMED
  connected: KP_CONNECTED
  issued: KP_REF_ISSUED
  redeemed: KP_REF_USED
category_option_combos:
  hiv_testing: "NO"
  employment: 007
org_units:
  "03390": LC_BINH_LU
  01234: OU_1234
"""


def test_mapping_from_yaml(tmp_path: Path) -> None:
    """It reads a YAML mapping, keeping codes such as NO and 007 and leading-zero keys as written."""
    path = tmp_path / "dhis2.yaml"
    path.write_text(YAML_MAPPING, encoding="utf-8")
    mapping = load_dhis2_mapping(path)
    assert mapping.data_set == "KP_OUTREACH" and mapping.id_scheme == "code"
    assert mapping.data_elements.redeemed == "KP_REF_USED"
    assert mapping.category_option_combos == {"hiv_testing": "NO", "employment": "007"}
    assert mapping.org_units == {3390: "LC_BINH_LU", 1234: "OU_1234"}
    export = to_dhis2(REPORT, mapping)
    assert export.payload["dataSet"] == "KP_OUTREACH"
    assert export.communes_omitted == (11284,)
    assert ("KP_REF_ISSUED", "LC_BINH_LU", "NO", "17") in value_set(export.payload)


def test_mapping_from_json(tmp_path: Path) -> None:
    """It reads the same mapping from JSON, and a file with org units only keeps An Tâm's codes."""
    path = tmp_path / "dhis2.json"
    path.write_text(json.dumps({"org_units": {"3390": "LC_BINH_LU"}, "category_option_combos": {}}), encoding="utf-8")
    mapping = load_dhis2_mapping(path)
    assert mapping.data_set is None
    assert mapping.data_elements == DEFAULT_DHIS2_MAPPING.data_elements
    assert mapping.org_unit(3390) == "LC_BINH_LU" and mapping.org_unit(11284) is None


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("typo.yaml", "data_element:\n  reached: X\n", "data_element"),
        ("indicator.yaml", "data_elements:\n  reachd: X\n", "reachd"),
        ("empty_id.json", '{"data_elements": {"reached": ""}}', "reached"),
        ("scheme.yaml", "id_scheme: name\n", "id_scheme"),
        ("uid.yaml", "id_scheme: uid\ndata_elements:\n  reached: a\n  informed: b\n  connected: c\n"
         "  issued: d\n  redeemed: e\n", "org_units"),
        ("commune.yaml", "org_units:\n  Bình Lư: OU1\n", "commune code"),
        ("broken.yaml", "data_elements: [\n", "not valid YAML"),
        ("broken.json", "{", "not valid JSON"),
        ("list.json", "[1, 2]", "must be a mapping"),
        ("empty.yaml", "", "must be a mapping"),
    ],
)
def test_bad_mapping_files(tmp_path: Path, name: str, content: str, problem: str) -> None:
    """A wrong mapping file raises ExportError naming the file and the problem."""
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ExportError) as caught:
        load_dhis2_mapping(path)
    assert name in str(caught.value) and problem in str(caught.value)


def test_missing_mapping_file(tmp_path: Path) -> None:
    """A mapping file that is not there is an ExportError too."""
    with pytest.raises(ExportError, match="nowhere.yaml"):
        load_dhis2_mapping(tmp_path / "nowhere.yaml")


def test_openpyxl_is_loaded_by_the_first_xlsx_export_only() -> None:
    """A worker that never exports keeps openpyxl (about 5 MiB) out of its memory."""
    code = (
        "import sys, bot.cli, bot.app, bot.referral_commands, bot.staff.routes, bot.staff.views.export\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'openpyxl'))\n"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"
