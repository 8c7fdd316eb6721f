"""Exports of the periodic report: a terminal table, CSV, XLSX and a DHIS2 payload.

The commune and provincial plans ask for 6-monthly and annual statistical reports (docs/architecture.md, "Indicators").
Each export here renders a ``PeriodReport`` whose cells are already protected (docs/architecture.md, "Privacy invariants"), and
the one rule that keeps them safe is: read a count through ``Cell.shown`` or ``Cell.text()``,
never through ``Cell.value``. A hidden cell therefore appears as "<5" or "*" in the table, the
CSV and the workbook, and not at all in DHIS2, which cannot hold text in a numeric data value.
No export writes a formula: a formula over hidden cells would hand their values back.

Labels come from the gettext catalogs (``content/locale/*/LC_MESSAGES/reports.po``), Vietnamese
by default; place names stay as the report carries them.

Writing the CSV: use ``csv_bytes()`` and write the bytes as they are. They are UTF-8 with a byte
order mark, which is what makes Excel in Vietnam read the diacritics correctly (without it Excel
guesses a legacy code page and "Xã" turns into mojibake). If you write ``to_csv()`` yourself,
open the file with ``encoding="utf-8-sig", newline=""``. The CSV is comma-separated with "." as
the decimal mark, for programs and for re-import; for people, hand out the XLSX, which opens the
same way whatever the computer's regional settings.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from babel.numbers import format_decimal
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator

from content.i18n import Catalogs
from referrals.labels import commune_label, date_label, period_label, scope_label, service_label, spike_text
from referrals.periods import Period
from referrals.report import INDICATORS, UNKNOWN_COMMUNE, CommuneLine, PeriodReport, Progress, spike_floor
from referrals.tables import Cell

if TYPE_CHECKING:
    from openpyxl.cell.cell import Cell as SheetCell
    from openpyxl.cell.cell import MergedCell
    from openpyxl.worksheet.worksheet import Worksheet

# Written where a percentage cannot be given (no estimate, nothing issued, or a hidden count).
NO_PERCENT = "—"
CREATOR = "An Tâm"


class ExportError(Exception):
    """An export cannot be produced as asked (for now: a DHIS2 mapping file is wrong)."""


def _title_lines(report: PeriodReport, catalogs: Catalogs, locale: str) -> tuple[str, str, str, str]:
    return (
        catalogs.text(locale, "report.title"),
        catalogs.text(locale, "report.scope", {"scope": scope_label(report, catalogs, locale)}),
        catalogs.text(locale, "report.period", {"period": period_label(report.period, catalogs, locale)}),
        catalogs.text(locale, "report.generated", {"date": date_label(report.generated_at, catalogs, locale)}),
    )


def _legend(report: PeriodReport, catalogs: Catalogs, locale: str) -> list[str]:
    small = {"small": f"<{report.threshold}", "largest": report.threshold - 1}
    return [
        catalogs.text(locale, "report.legend.small", small),
        catalogs.text(locale, "report.legend.masked"),
        catalogs.text(locale, "report.legend.no_percent"),
        catalogs.text(locale, "report.legend.reached"),
        catalogs.text(locale, "report.legend.informed"),
        catalogs.text(locale, "report.legend.connected"),
        catalogs.text(locale, "report.legend.counselled"),
        catalogs.text(locale, "report.legend.unique"),
        catalogs.text(locale, "report.legend.percent"),
        catalogs.text(locale, "report.legend.privacy"),
        *(
            [
                catalogs.text(locale, "report.legend.not_counted"),
                catalogs.text(locale, "report.legend.spikes", {"floor": spike_floor(report.threshold)}),
            ]
            if report.not_counted is not None
            else []
        ),
    ]


# --------------------------------------------------------------------------- protected reading
#
# The only places in this module that turn a report's numbers into output. Everything below
# goes through them, so a hidden cell can only ever come out as its text.

Value = int | float | str | None


def _count(cell: Cell | None, threshold: int) -> int | str | None:
    """A shown count as a number, a hidden one as "<5" or "*"; None when there is no cell."""
    if cell is None:
        return None
    shown = cell.shown
    return cell.text(threshold) if shown is None else shown


def _percent(progress: Progress, count: Cell | None) -> float | None:
    # The report already leaves the percentage out when the count is hidden; checking again
    # here costs nothing and keeps "estimate × percent" from ever rebuilding a hidden count.
    if count is None or count.hidden:
        return None
    return progress.percent


def _uptake(uptake: float | None, issued: Cell | None, redeemed: Cell | None) -> float | None:
    # Same reasoning as _percent: a ratio of a shown and a hidden count can reveal the hidden one.
    if issued is None or redeemed is None or issued.hidden or redeemed.hidden:
        return None
    return uptake


def _row_total(table_totals: tuple[Cell, ...] | None, index: int) -> Cell | None:
    return table_totals[index] if table_totals is not None and index < len(table_totals) else None


# --------------------------------------------------------------------------- the flat grid
#
# CSV and XLSX share one grid (same columns, same order), so the two files always agree.


class _Kind(StrEnum):
    TEXT = "text"
    CODE = "code"
    COUNT = "count"
    ESTIMATE = "estimate"
    PERCENT = "percent"


@dataclass(frozen=True)
class _Column:
    header: str
    kind: _Kind


@dataclass(frozen=True)
class _Grid:
    columns: tuple[_Column, ...]
    rows: tuple[tuple[Value, ...], ...]  # one per commune, in report order
    total: tuple[Value, ...]


def _columns(report: PeriodReport, catalogs: Catalogs, locale: str) -> tuple[_Column, ...]:
    def text(key: str, **params: object) -> str:
        return catalogs.text(locale, key, params)

    columns = [
        _Column(text("report.col.province"), _Kind.TEXT),
        _Column(text("report.col.commune_code"), _Kind.CODE),
        _Column(text("report.col.commune"), _Kind.TEXT),
    ]
    for indicator in INDICATORS:
        columns += [
            _Column(text(f"report.col.{indicator}"), _Kind.COUNT),
            _Column(text(f"report.col.{indicator}.estimate"), _Kind.ESTIMATE),
            _Column(text(f"report.col.{indicator}.percent"), _Kind.PERCENT),
            _Column(text(f"report.col.{indicator}.target"), _Kind.PERCENT),
        ]
    for key in ("issued", "redeemed"):
        columns += [
            _Column(text(f"report.col.{key}", service=service_label(st, catalogs, locale)), _Kind.COUNT)
            for st in report.service_types
        ]
        columns.append(_Column(text(f"report.col.{key}_total"), _Kind.COUNT))
    columns.append(_Column(text("report.col.uptake"), _Kind.PERCENT))
    if report.not_counted is not None:
        columns.append(_Column(text("report.col.not_counted"), _Kind.COUNT))
        columns.append(_Column(text("report.col.spikes"), _Kind.TEXT))
    return tuple(columns)


def _checks(report: PeriodReport, row: int | None) -> list[Value]:
    """The "not counted (limit)" count and the spike days of a commune (None: the total row)."""
    table = report.not_counted
    if table is None:
        return []
    if row is None:
        total = table.column_totals[0] if table.column_totals else None
        return [_count(total, report.threshold), ""]
    spikes = report.spikes[row] if row < len(report.spikes) else ()
    return [_count(table.body[row][0], report.threshold), spike_text(spikes)]


def _values(
    report: PeriodReport,
    people: Sequence[Cell | None],
    progress: Sequence[Progress],
    issued: Sequence[Cell | None],
    issued_total: Cell | None,
    redeemed: Sequence[Cell | None],
    redeemed_total: Cell | None,
    uptake: float | None,
) -> list[Value]:
    threshold = report.threshold
    values: list[Value] = []
    for count, line in zip(people, progress, strict=True):
        values += [_count(count, threshold), line.estimate, _percent(line, count), line.target_percent]
    values += [_count(cell, threshold) for cell in issued]
    values.append(_count(issued_total, threshold))
    values += [_count(cell, threshold) for cell in redeemed]
    values.append(_count(redeemed_total, threshold))
    values.append(_uptake(uptake, issued_total, redeemed_total))
    return values


def _grid(report: PeriodReport, catalogs: Catalogs, locale: str) -> _Grid:
    rows = []
    for r, line in enumerate(report.communes):
        code = "" if line.code == UNKNOWN_COMMUNE else f"{line.code:05d}"
        labels: list[Value] = [line.province_name, code, commune_label(line, catalogs, locale)]
        rows.append(
            tuple(
                labels
                + _values(
                    report,
                    report.people.body[r],
                    report.progress[r],
                    report.issued.body[r],
                    _row_total(report.issued.row_totals, r),
                    report.redeemed.body[r],
                    _row_total(report.redeemed.row_totals, r),
                    report.uptake[r],
                )
                + _checks(report, r)
            )
        )
    missing_people: tuple[Cell | None, ...] = (None,) * len(INDICATORS)
    missing_types: tuple[Cell | None, ...] = (None,) * len(report.service_types)
    total_labels: list[Value] = [catalogs.text(locale, "report.total"), "", ""]
    total = total_labels + _values(
        report,
        report.people.column_totals or missing_people,
        report.total_progress,
        report.issued.column_totals or missing_types,
        report.issued.grand_total,
        report.redeemed.column_totals or missing_types,
        report.redeemed.grand_total,
        report.total_uptake,
    ) + _checks(report, None)
    return _Grid(_columns(report, catalogs, locale), tuple(rows), tuple(total))


# --------------------------------------------------------------------------- CSV


def _csv_field(value: Value, kind: _Kind) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, int):
        return str(value)
    if kind is _Kind.TEXT and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        # A spreadsheet would run a name that starts like this as a formula ("CSV injection").
        return "'" + value
    return value


def to_csv(report: PeriodReport, catalogs: Catalogs, locale: str = "vi") -> str:
    """One header row, one row per commune, then the total row ("Tổng"); hidden cells as "<5"/"*".

    Returns text with CRLF line ends (RFC 4180); see the module docstring for how to write it.
    """
    grid = _grid(report, catalogs, locale)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([column.header for column in grid.columns])
    for row in (*grid.rows, grid.total):
        writer.writerow([_csv_field(value, column.kind) for value, column in zip(row, grid.columns, strict=True)])
    return buffer.getvalue()


def csv_bytes(report: PeriodReport, catalogs: Catalogs, locale: str = "vi") -> bytes:
    """The CSV as UTF-8 with a byte order mark, ready to write to a file or send as a download."""
    return to_csv(report, catalogs, locale).encode("utf-8-sig")


# --------------------------------------------------------------------------- XLSX

_HEADER_ROW = 6  # under the four-line title block and one blank line
_WIDTHS = {_Kind.TEXT: 22.0, _Kind.CODE: 9.0, _Kind.COUNT: 14.0, _Kind.ESTIMATE: 14.0, _Kind.PERCENT: 12.0}
_FORMATS = {_Kind.COUNT: "#,##0", _Kind.ESTIMATE: "#,##0", _Kind.PERCENT: "0.0", _Kind.CODE: "@"}


def _put(sheet: Worksheet, row: int, column: int, value: Value) -> SheetCell | MergedCell:
    cell = sheet.cell(row=row, column=column)
    cell.value = value
    if isinstance(value, str):
        # openpyxl stores any text that starts with "=" as a formula; a name or label never is one.
        cell.data_type = "s"
    return cell


def to_xlsx(report: PeriodReport, catalogs: Catalogs, locale: str = "vi") -> bytes:
    """A workbook for the 6-monthly and annual reports: title block, the table, then the notes.

    Shown counts and percentages are numbers (percentages with one decimal); hidden counts are
    the text "<5" or "*". There are no formulas: totals are the report's own protected totals.
    """
    # openpyxl (5 MiB in memory) is loaded by the first export, not by every worker at start.
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.properties import PageSetupProperties

    right = Alignment(horizontal="right")
    bold = Font(bold=True)
    grid = _grid(report, catalogs, locale)
    title, scope, period, produced = _title_lines(report, catalogs, locale)

    book = Workbook()
    sheet = book.worksheets[0]
    # A sheet name cannot hold "/" (as in "Tháng 3/2026"), so it carries the period's key.
    sheet.title = f"{catalogs.text(locale, 'report.sheet')} {report.period.key}"[:31]

    _put(sheet, 1, 1, title).font = Font(bold=True, size=14)
    for row, line in enumerate((scope, period, produced), start=2):
        _put(sheet, row, 1, line)

    header_fill = PatternFill(fill_type="solid", start_color="FFDDEBF7", end_color="FFDDEBF7")
    for index, column in enumerate(grid.columns, start=1):
        cell = _put(sheet, _HEADER_ROW, index, column.header)
        cell.font = bold
        cell.fill = header_fill
        cell.alignment = Alignment(wrap_text=True, vertical="center", horizontal="center")
        sheet.column_dimensions[get_column_letter(index)].width = _WIDTHS[column.kind]
    # Long Vietnamese headers wrap onto up to five lines at these widths.
    sheet.row_dimensions[_HEADER_ROW].height = 78

    row = _HEADER_ROW
    for values in (*grid.rows, grid.total):
        row += 1
        for index, (value, column) in enumerate(zip(values, grid.columns, strict=True), start=1):
            if value is None and column.kind is _Kind.PERCENT:
                value = NO_PERCENT
            cell = _put(sheet, row, index, value)
            if column.kind is _Kind.CODE:
                # Text format keeps the leading zero of "03390" if someone edits the cell.
                cell.number_format = _FORMATS[_Kind.CODE]
            elif isinstance(value, int | float):
                cell.number_format = _FORMATS[column.kind]
            elif isinstance(value, str) and column.kind is not _Kind.TEXT:
                # "<5", "*" and "—" line up with the numbers around them.
                cell.alignment = right
            if values is grid.total:
                cell.font = bold
    # Province, code and commune stay in view while scrolling across the indicators.
    sheet.freeze_panes = f"D{_HEADER_ROW + 1}"
    # Reports also go out on paper: landscape A4, one page wide, the header row on every page.
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = sheet.PAPERSIZE_A4
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
    sheet.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    sheet.print_title_rows = f"{_HEADER_ROW}:{_HEADER_ROW}"

    row += 2
    _put(sheet, row, 1, catalogs.text(locale, "report.legend.title")).font = bold
    small = Font(size=9)
    for line in _legend(report, catalogs, locale):
        row += 1
        _put(sheet, row, 1, line).font = small

    # Document properties name the report and the program, never the person who exported it.
    generated = report.generated_at
    if generated.tzinfo is not None:
        generated = generated.astimezone(dt.UTC).replace(tzinfo=None)
    book.properties.title = title
    book.properties.subject = period
    book.properties.creator = CREATOR
    book.properties.lastModifiedBy = CREATOR
    book.properties.created = generated
    book.properties.language = locale

    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


# --------------------------------------------------------------------------- terminal table


def _number(value: int | float, locale: str) -> str:
    pattern = "#,##0.0" if isinstance(value, float) else "#,##0"
    return format_decimal(value, format=pattern, locale=locale)


def _show(value: Value, locale: str, missing: str = "") -> str:
    if value is None:
        return missing
    if isinstance(value, str):
        return value
    return _number(value, locale)


def _block(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Align a block: the first column to the left, numbers to the right."""
    widths = [max(len(row[i]) for row in (headers, *rows)) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        parts = [cells[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:])]
        return "  ".join(parts).rstrip()

    return [line(headers), "  ".join("─" * width for width in widths), *(line(row) for row in rows)]


def to_table(report: PeriodReport, catalogs: Catalogs, locale: str = "vi") -> str:
    """A plain-text report for a terminal: one block per indicator, then the referrals, then notes."""

    def text(key: str, params: dict[str, object] | None = None) -> str:
        return catalogs.text(locale, key, params)

    threshold = report.threshold
    provinces = {line.province_code for line in report.communes if line.code != UNKNOWN_COMMUNE}

    def name(line: CommuneLine) -> str:
        label = commune_label(line, catalogs, locale)
        # Two communes of different provinces may share a name; say which is which.
        if len(provinces) > 1 and line.code != UNKNOWN_COMMUNE and line.province_name:
            return f"{label} ({line.province_name})"
        return label

    names = [name(line) for line in report.communes] + [text("report.total")]
    out = [*_title_lines(report, catalogs, locale)]

    def result(progress: Progress, count: Cell | None) -> str:
        if _percent(progress, count) is None:
            return NO_PERCENT
        return text("report.met") if progress.met else text("report.not_met")

    headers = [
        text("report.col.commune"),
        text("report.short.count"),
        text("report.short.estimate"),
        text("report.short.percent"),
        text("report.short.target"),
        text("report.short.result"),
    ]
    for i, indicator in enumerate(INDICATORS):
        cells: list[Cell | None] = [row[i] for row in report.people.body]
        cells.append(_row_total(report.people.column_totals, i))
        progress = [line[i] for line in report.progress] + [report.total_progress[i]]
        rows = [
            [
                label,
                _show(_count(cell, threshold), locale),
                _show(line.estimate, locale),
                _show(_percent(line, cell), locale, NO_PERCENT),
                _show(line.target_percent, locale),
                result(line, cell),
            ]
            for label, cell, line in zip(names, cells, progress, strict=True)
        ]
        out += ["", text(f"report.col.{indicator}"), *_block(headers, rows)]

    types = [service_label(st, catalogs, locale) for st in report.service_types]
    for key, table in (("issued", report.issued), ("redeemed", report.redeemed)):
        body: list[Sequence[Cell | None]] = [*table.body, table.column_totals or (None,) * len(types)]
        totals = [_row_total(table.row_totals, r) for r in range(len(report.communes))] + [table.grand_total]
        headers = [text("report.col.commune"), *types, text("report.total")]
        rows = [
            [label, *(_show(_count(cell, threshold), locale) for cell in (*cells, total))]
            for label, cells, total in zip(names, body, totals, strict=True)
        ]
        if key == "redeemed":
            headers.append(text("report.col.uptake"))
            issued_totals = [_row_total(report.issued.row_totals, r) for r in range(len(report.communes))]
            issued_totals.append(report.issued.grand_total)
            uptakes = [*report.uptake, report.total_uptake]
            for row, uptake, issued, redeemed in zip(rows, uptakes, issued_totals, totals, strict=True):
                row.append(_show(_uptake(uptake, issued, redeemed), locale, NO_PERCENT))
        out += ["", text(f"report.section.{key}"), *_block(headers, rows)]

    people_totals = report.people.column_totals or (None,) * len(INDICATORS)
    summary: dict[str, object] = {
        indicator: _show(_count(cell, threshold), locale, NO_PERCENT)
        for indicator, cell in zip(INDICATORS, people_totals, strict=True)
    }
    summary["issued"] = _show(_count(report.issued.grand_total, threshold), locale, NO_PERCENT)
    summary["redeemed"] = _show(_count(report.redeemed.grand_total, threshold), locale, NO_PERCENT)
    uptake = _uptake(report.total_uptake, report.issued.grand_total, report.redeemed.grand_total)
    summary["uptake"] = NO_PERCENT if uptake is None else f"{_number(uptake, locale)} %"
    out += ["", text("report.summary", summary)]

    if report.not_counted is not None:
        checks = [_checks(report, r) for r in range(len(report.communes))] + [_checks(report, None)]
        headers = [text("report.col.commune"), text("report.col.not_counted"), text("report.col.spikes")]
        rows = [[label, _show(count, locale), str(days)] for label, (count, days) in zip(names, checks, strict=True)]
        out += ["", text("report.section.checks"), *_block(headers, rows)]

    out += ["", text("report.legend.title") + ":"]
    out += [f"  {line}" for line in _legend(report, catalogs, locale)]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- DHIS2

_Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=230)]
# YAML spellings of "nothing" that the plain-text loader below leaves as strings.
_NULLS = {"", "~", "null", "Null", "NULL"}


class _Strict(BaseModel):
    # Unknown keys are refused so that a misspelt key is an error, not a silently ignored line.
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


class Dhis2DataElements(_Strict):
    """The DHIS2 data element for each indicator and for the two referral counts."""

    reached: _Id = "ANTAM_REACHED"
    informed: _Id = "ANTAM_INFORMED"
    connected: _Id = "ANTAM_CONNECTED"
    # Optional: a mapping written before the counsellor chat existed names no element for it,
    # and with UIDs nothing is sent for it (An Tâm's default code is not a UID).
    counselled: _Id | None = "ANTAM_COUNSELLED"
    issued: _Id = "ANTAM_REFERRALS_ISSUED"
    redeemed: _Id = "ANTAM_REFERRALS_REDEEMED"


class Dhis2Mapping(_Strict):
    """How An Tâm's report lands in a DHIS2 instance.

    The default data element codes (ANTAM_REACHED, ANTAM_INFORMED, ANTAM_CONNECTED, ANTAM_COUNSELLED,
    ANTAM_REFERRALS_ISSUED, ANTAM_REFERRALS_REDEEMED) are An Tâm's own suggestions: a DHIS2
    administrator creates data elements with these codes, or maps An Tâm onto existing ones in a
    mapping file. They are not known to exist in any national DHIS2 instance.

    With ``id_scheme`` "code" every identifier (data set, data elements, org units, category
    option combos) is a DHIS2 *code*; with "uid" every one is a DHIS2 UID, and the data elements
    and org units must then be given. Without ``org_units`` a commune's org unit is its 5-digit
    2025 commune code ("03390"). Without ``category_option_combos`` each referral count is sent
    as the commune's total over all service types.
    """

    data_set: _Id | None = None
    id_scheme: Literal["code", "uid"] = "code"
    data_elements: Dhis2DataElements = Field(default_factory=Dhis2DataElements)
    category_option_combos: dict[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")], _Id] = Field(
        default_factory=dict
    )
    org_units: dict[int, _Id] | None = None

    @field_validator("data_set", mode="before")
    @classmethod
    def _nothing_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and value.strip() in _NULLS else value

    @field_validator("org_units", mode="before")
    @classmethod
    def _commune_codes(cls, value: object) -> object:
        if isinstance(value, str) and value.strip() in _NULLS:
            return None
        if not isinstance(value, dict):
            return value
        codes: dict[int, object] = {}
        for key, org_unit in value.items():
            text = str(key).strip()
            if not (text.isascii() and text.isdigit() and 0 < int(text) <= 99999):
                raise ValueError(f"'{key}' is not a commune code (write the 5-digit 2025 code, e.g. \"03390\")")
            codes[int(text)] = org_unit
        return codes

    @model_validator(mode="after")
    def _uids_are_explicit(self) -> Dhis2Mapping:
        if self.id_scheme == "uid":
            if "data_elements" not in self.model_fields_set:
                raise ValueError("id_scheme uid needs data_elements: An Tâm's default codes are not UIDs")
            if "counselled" not in self.data_elements.model_fields_set:
                object.__setattr__(self, "data_elements", self.data_elements.model_copy(update={"counselled": None}))
            if self.org_units is None:
                raise ValueError("id_scheme uid needs org_units: a commune code is not an org unit UID")
        return self

    def org_unit(self, commune: int) -> str | None:
        """The commune's org unit, or None when an explicit mapping leaves it out."""
        if self.org_units is None:
            return f"{commune:05d}"
        return self.org_units.get(commune)

    def import_params(self) -> dict[str, str]:
        """Identifier schemes for the import; also valid as query parameters of POST /api/dataValueSets."""
        if self.id_scheme == "uid":
            # UID is DHIS2's default; saying nothing is the most portable way to ask for it.
            return {}
        return {
            "idScheme": "CODE",
            "dataSetIdScheme": "CODE",
            "dataElementIdScheme": "CODE",
            "orgUnitIdScheme": "CODE",
            "categoryOptionComboIdScheme": "CODE",
        }


DEFAULT_DHIS2_MAPPING = Dhis2Mapping()


def load_dhis2_mapping(path: Path | str) -> Dhis2Mapping:
    """Read a mapping from a JSON file (``.json``) or a YAML file (anything else).

    Raises ExportError naming the file and every problem found.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ExportError(f"{path}: cannot read the DHIS2 mapping: {exc}") from exc
    try:
        if path.suffix.lower() == ".json":
            data: Any = json.loads(text)
        else:
            # Every value in a mapping is an identifier, so YAML is read as plain strings: the
            # full loader would turn 01234 into the octal number 668 and a code such as NO or
            # ON into a boolean.
            data = yaml.load(text, Loader=yaml.BaseLoader)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ExportError(f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {exc}") from exc
    if not isinstance(data, dict):
        raise ExportError(f"{path}: the DHIS2 mapping must be a mapping of keys (data_elements, org_units, …)")
    try:
        return Dhis2Mapping.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'mapping'}: {error['msg']}" for error in exc.errors()
        )
        raise ExportError(f"{path}: bad DHIS2 mapping: {problems}") from exc


@dataclass(frozen=True)
class Dhis2Export:
    """A dataValueSets payload and what was left out of it, for the command line to report."""

    payload: dict[str, Any]
    # Values that would have been sent but are hidden ("<5", "*"): DHIS2 cannot hold them.
    hidden_omitted: int
    # Communes with no org unit in an explicit org_units mapping (their values are not sent).
    communes_omitted: tuple[int, ...]
    # Service types with no category option combo while others have one (not sent).
    service_types_omitted: tuple[str, ...]


def to_dhis2(report: PeriodReport, mapping: Dhis2Mapping = DEFAULT_DHIS2_MAPPING) -> Dhis2Export:
    """Build a DHIS2 dataValueSets payload with one value per published cell of each commune.

    Sent: reached, informed, connected and counselled per commune; referral codes issued and used per
    commune, per service type when the mapping gives category option combos, otherwise the
    commune's total. Left out: hidden cells, the row of people whose commune is not known (it
    has no org unit), and communes missing from an explicit org-unit mapping. Scope totals are
    not sent: DHIS2 adds up its own org-unit hierarchy.
    """
    elements = mapping.data_elements
    combos = mapping.category_option_combos
    # Sending both per-type values and the commune's total to one data element would count
    # every referral twice in DHIS2's own totals, so it is one or the other.
    per_type = bool(combos)
    values: list[dict[str, str]] = []
    hidden = 0
    communes_omitted: list[int] = []

    def add(element: str, org_unit: str, cell: Cell | None, combo: str | None = None) -> None:
        nonlocal hidden
        if cell is None:
            return
        shown = cell.shown
        if shown is None:
            hidden += 1
            return
        value = {"dataElement": element, "orgUnit": org_unit, "value": str(shown)}
        if combo is not None:
            value["categoryOptionCombo"] = combo
        values.append(value)

    for r, line in enumerate(report.communes):
        if line.code == UNKNOWN_COMMUNE:
            continue
        org_unit = mapping.org_unit(line.code)
        if org_unit is None:
            communes_omitted.append(line.code)
            continue
        for i, indicator in enumerate(INDICATORS):
            element = getattr(elements, indicator)
            if element is not None:
                add(element, org_unit, report.people.body[r][i])
        for element, table in ((elements.issued, report.issued), (elements.redeemed, report.redeemed)):
            if per_type:
                for c, service_type in enumerate(report.service_types):
                    if service_type in combos:
                        add(element, org_unit, table.body[r][c], combos[service_type])
            else:
                add(element, org_unit, _row_total(table.row_totals, r))

    payload: dict[str, Any] = {}
    if mapping.data_set is not None:
        payload["dataSet"] = mapping.data_set
    payload["period"] = report.period.dhis2
    payload.update(mapping.import_params())
    payload["dataValues"] = values
    skipped_types = tuple(st for st in report.service_types if per_type and st not in combos)
    return Dhis2Export(payload, hidden, tuple(communes_omitted), skipped_types)
