"""Read the rows of a CRM export: CSV, Excel (``.xlsx``, openpyxl) or Parquet (pyarrow).

Every reader gives the same thing: the header (column names) and ``(row number, cells)``
pairs, cells as text with blanks around them stripped (an empty cell is ``""``), so a
mapping treats the three formats alike. Row numbers are what a person finds the row
by: the CSV line where the row starts (the header is line 1), the worksheet's row
number in Excel, and the 1-based data row in Parquet (no header line).

Excel and Parquet values that are not text are written the way a CSV export writes
them: a date-time as ISO-8601 (``2026-10-01T09:00:00``, with its offset when it has
one), a date as ``2026-10-01`` (in Excel: a cell whose number format shows no time), a
whole number without ``.0``.
"""

from __future__ import annotations

import codecs
import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from streams.mapping.spec import MappingError

__all__ = ["Table", "open_table"]

FORMATS = {".csv": "csv", ".txt": "csv", ".xlsx": "xlsx", ".xlsm": "xlsx", ".parquet": "parquet"}


@dataclass
class Table:
    """An export file opened for reading: its columns, an estimate of its rows, the rows."""

    path: Path
    header: list[str]
    rows_hint: int  # rows expected (for a progress bar); 0 when unknown
    _rows: Iterator[tuple[int, dict[str, str]]]

    def rows(self) -> Iterator[tuple[int, dict[str, str]]]:
        return self._rows


def open_table(
    path: Path, sheet: str | None = None, delimiter: str = ",", encoding: str = "utf-8"
) -> Table:
    """Open a CSV / .xlsx / .parquet export; :class:`MappingError` when it cannot be.

    ``delimiter`` and ``encoding`` are the CSV's (e.g. ``;`` and ``cp1252`` for a CSV
    saved by a European Excel); a UTF-8 byte order mark is dropped. Bytes that are not
    in the encoding become U+FFFD, which the contract refuses in names and ids: such a
    row is rejected, naming the field."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise MappingError(
            f"{path}: unknown export type {path.suffix!r} (use .csv, .xlsx or .parquet)"
        )
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise MappingError(f"export file {str(path)!r} {what}")
    if sheet is not None and kind != "xlsx":
        raise MappingError(f"{path}: 'sheet' is for .xlsx files only")
    if kind == "csv":
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise MappingError(f"{path}: unknown encoding {encoding!r}") from None
        return _csv(path, delimiter, encoding)
    if kind == "xlsx":
        return _xlsx(path, sheet)
    return _parquet(path)


# ---- CSV -----------------------------------------------------------------------------------


def _csv(path: Path, delimiter: str, encoding: str) -> Table:
    with path.open("rb") as fh:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    if codecs.lookup(encoding).name == "utf-8":
        encoding = "utf-8-sig"
    fh_text = path.open(encoding=encoding, errors="replace", newline="")
    reader = csv.reader(fh_text, delimiter=delimiter)
    header = [h.strip() for h in next(reader, [])]
    _check_header(path, header)

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        try:
            start = reader.line_num + 1
            for cells in reader:
                number, start = start, reader.line_num + 1
                if not any(c.strip() for c in cells):
                    continue
                row = {name: "" for name in header}
                for name, cell in zip(header, cells, strict=False):
                    row[name] = cell.strip()
                if len(cells) > len(header):
                    row["\x00extra"] = str(len(cells) - len(header))
                yield number, row
        finally:
            fh_text.close()

    return Table(path, header, max(lines - 1, 0), rows())


def _check_header(path: Path, header: list[str]) -> None:
    if not header or not any(header):
        raise MappingError(f"{path}: no header row (the first row names the columns)")
    seen: set[str] = set()
    for name in header:
        if name and name in seen:
            raise MappingError(f"{path}: column {name!r} appears twice in the header")
        seen.add(name)


# ---- Excel ---------------------------------------------------------------------------------


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return str(int(value))
        return repr(value)
    return str(value).strip()


def _xlsx_text(cell: Any) -> str:
    """A worksheet cell as text. Excel keeps a date as a date-time at midnight; a cell
    whose number format shows no time of day is written as the date alone, as a CSV
    export writes it (so the mapping gives it its stated time of day)."""
    value = getattr(cell, "value", None)
    if isinstance(value, datetime) and value.time() == datetime.min.time():
        fmt = str(getattr(cell, "number_format", "") or "").lower()
        if "h" not in fmt and "s" not in fmt.replace("mm", ""):
            return value.date().isoformat()
    return _cell_text(value)


def _xlsx(path: Path, sheet: str | None) -> Table:
    try:
        import openpyxl
    except ImportError:
        raise MappingError(
            f"{path}: reading .xlsx needs openpyxl (pip install 'gapmon[import]')"
        ) from None
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds on a bad file
        raise MappingError(f"{path}: not a readable .xlsx file ({type(exc).__name__})") from None
    if sheet is not None and sheet not in book.sheetnames:
        raise MappingError(f"{path}: no worksheet {sheet!r} (sheets: {', '.join(book.sheetnames)})")
    ws = book[sheet] if sheet is not None else book.worksheets[0]
    it = ws.iter_rows()
    header = [_cell_text(c.value) for c in next(it, ())]
    while header and not header[-1]:
        header.pop()
    _check_header(path, header)

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        try:
            for number, row_cells in enumerate(it, start=2):
                cells = [_xlsx_text(c) for c in row_cells]
                if not any(cells):
                    continue
                row = {name: "" for name in header}
                for name, cell in zip(header, cells, strict=False):
                    row[name] = cell
                if any(cells[len(header) :]):
                    row["\x00extra"] = str(sum(1 for c in cells[len(header) :] if c))
                yield number, row
        finally:
            book.close()

    return Table(path, header, max((ws.max_row or 1) - 1, 0), rows())


# ---- Parquet -------------------------------------------------------------------------------


def _parquet(path: Path) -> Table:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MappingError(
            f"{path}: reading .parquet needs pyarrow (pip install 'gapmon[import]')"
        ) from None
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError...
        raise MappingError(f"{path}: not a readable Parquet file ({exc})") from None
    header = list(pf.schema_arrow.names)
    _check_header(path, header)

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        number = 0
        for batch in pf.iter_batches(batch_size=10_000):
            columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
            for values in zip(*columns, strict=True):
                number += 1
                yield number, {name: _cell_text(v) for name, v in zip(header, values, strict=True)}

    return Table(path, header, pf.metadata.num_rows, rows())
