"""Reading data files with line numbers, and parsing their label cells.

Shared by the public sets' loaders (:mod:`classifier.datasets.public`) and the loaders of the files users
bring (:mod:`classifier.datasets.files`). Every problem raises :class:`~classifier.errors.DatasetError`
with the path and line, so a bad file reads as ``path:line: message``, not a traceback.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from pathlib import Path

from classifier.errors import DatasetError

# Process-wide: csv's default limit of 128 KiB per field is raised to 16 MiB on import.
csv.field_size_limit(16 * 1024 * 1024)


def iter_text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Decode a file as UTF-8 line by line (BOM allowed), yielding (line number, line with its newline)."""
    path = Path(path)
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise DatasetError(f"cannot open file: {exc.strerror or exc}", path) from None
    with f:
        for number, raw in enumerate(f, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DatasetError(
                    f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
                    "save the file as UTF-8",
                    path,
                    number,
                ) from None


def iter_csv_dicts(
    path: Path, required: Iterable[str] = (), delimiter: str = ",", any_of: Iterable[str] = ()
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (first line of the record, row) from a CSV file with a header, with clear errors."""
    path = Path(path)
    lines = iter_text_lines(path)
    state = {"line": 0}

    def feed() -> Iterator[str]:
        for number, text in lines:
            state["line"] = number
            yield text

    reader = csv.reader(feed(), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise DatasetError(f"malformed CSV header: {exc}", path, state["line"]) from None
    if header is None:
        raise DatasetError("empty file: expected a header row", path, 1)
    header = [h.strip() for h in header]
    missing = [col for col in required if col not in header]
    if missing:
        raise DatasetError(
            f"missing required column(s) {', '.join(missing)}; header has: {', '.join(header)}", path, 1
        )
    any_of = tuple(any_of)
    if any_of and not any(col in header for col in any_of):
        raise DatasetError(f"need at least one of the columns {', '.join(any_of)}", path, 1)
    while True:
        start = state["line"] + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DatasetError(f"malformed CSV: {exc}", path, start) from None
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != len(header):
            raise DatasetError(f"expected {len(header)} fields, found {len(row)}", path, start)
        yield start, dict(zip(header, row, strict=True))


#: Cell values read as 1 (after strip and lower-casing).
TRUE_WORDS: set[str] = {"1", "1.0", "true", "yes", "y", "t"}
#: Cell values read as 0 (after strip and lower-casing).
FALSE_WORDS: set[str] = {"0", "0.0", "false", "no", "n", "f"}


def parse_binary(value: str, path: Path, line: int | None, column: str) -> float:
    """A 0/1 or true/false cell as 1.0 or 0.0; anything else raises :class:`DatasetError` at ``path:line``."""
    v = value.strip().lower()
    if v in TRUE_WORDS:
        return 1.0
    if v in FALSE_WORDS:
        return 0.0
    raise DatasetError(f"column {column!r}: expected 0/1 or true/false, got {value!r}", path, line)


def parse_fraction(value: str | float | int | bool, path: Path, line: int | None, column: str) -> float:
    """A number in [0, 1] (or true/false, 0/1), else :class:`DatasetError` at ``path:line``."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        v = value.strip().lower()
        if v in TRUE_WORDS:
            return 1.0
        if v in FALSE_WORDS:
            return 0.0
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if not 0.0 <= number <= 1.0:
        raise DatasetError(f"column {column!r}: expected a number in [0, 1], got {value!r}", path, line)
    return number
