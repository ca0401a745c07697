"""Job files: storing uploads and results, and reading import rows.

Files live under ``JOBS_STORAGE_DIR/<job storage key>/`` on a filesystem that the web
processes and the workers share. Import files are CSV or JSON:

- CSV: UTF-8 with or without a byte order mark; the delimiter (``,`` or ``;``) is the
  one the header line uses most; header names are case-insensitive and trimmed.
- JSON: an array of objects; keys are case-insensitive. Scalars are read as their text
  (``true``/``false`` for booleans), a list as its items joined with ``|``.

Rows are read lazily (CSV) so a large file is never held in memory by the reader.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from django.conf import settings

from membership_site.api.parsers import text_problem

from .errors import FileUnreadableError
from .registry import ImportRow

CSV = "csv"
JSON = "json"
LIST_SEPARATOR = "|"


def storage_root() -> Path:
    return Path(settings.JOBS_STORAGE_DIR)


def job_dir(storage_key: str) -> Path:
    return storage_root() / storage_key


def path_of(relative: str) -> Path:
    path = (storage_root() / relative).resolve()
    if storage_root().resolve() not in path.parents:
        raise ValueError(f"{relative!r} is outside JOBS_STORAGE_DIR")
    return path


def save_input(storage_key: str, chunks: Iterable[bytes], fmt: str) -> str:
    """Write an uploaded file under the job's directory; returns its relative path."""
    directory = job_dir(storage_key)
    directory.mkdir(parents=True, exist_ok=True)
    relative = f"{storage_key}/input.{fmt}"
    with open(storage_root() / relative, "wb") as out:
        for chunk in chunks:
            out.write(chunk)
    return relative


def result_path(storage_key: str, fmt: str) -> tuple[str, Path]:
    directory = job_dir(storage_key)
    directory.mkdir(parents=True, exist_ok=True)
    relative = f"{storage_key}/result.{fmt}"
    return relative, storage_root() / relative


def delete_job_files(storage_key: str) -> None:
    shutil.rmtree(job_dir(storage_key), ignore_errors=True)


def detect_format(head: bytes) -> str:
    """JSON when the first character (after a BOM and blanks) opens an array."""
    text = head.removeprefix(codecs.BOM_UTF8).lstrip()
    return JSON if text[:1] == b"[" else CSV


def _detect_delimiter(header_line: str) -> str:
    # Count outside quotes, so a quoted "Last; First" header does not decide.
    counts = {",": 0, ";": 0}
    quoted = False
    for char in header_line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    return ";" if counts[";"] > counts[","] else ","


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return LIST_SEPARATOR.join(_cell(item) for item in value)
    if isinstance(value, dict):
        raise ValueError("nested objects are not supported")
    return str(value).strip()


def _check_text(texts: list[str]) -> None:
    """A cell PostgreSQL cannot store (a NUL, a lone surrogate from a JSON escape) makes
    its row unreadable, instead of failing the whole job in the database."""
    for text in texts:
        problem = text_problem(text)
        if problem:
            raise ValueError(f"a cell {problem}")


@dataclass(frozen=True)
class Header:
    columns: tuple[str, ...]
    delimiter: str = ","


class RowReader:
    """Reads the rows of an import file (a path or a binary stream)."""

    def __init__(self, source: Path | IO[bytes], fmt: str) -> None:
        self.source = source
        self.format = fmt

    def _open_binary(self) -> IO[bytes]:
        if isinstance(self.source, Path):
            return open(self.source, "rb")
        self.source.seek(0)
        return _Unclosable(self.source)

    def header(self) -> Header:
        """The column names (lower-case) of a CSV file; for JSON, the keys of all rows."""
        if self.format == JSON:
            keys: dict[str, None] = {}
            for record in self._json_records():
                keys.update(dict.fromkeys(str(key).strip().lower() for key in record))
            return Header(tuple(keys))
        with self._open_binary() as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            try:
                first = text.readline()
            except UnicodeDecodeError:
                raise FileUnreadableError("The file is not UTF-8 text.", code="bad_encoding") from None
            finally:
                text.detach()
        if not first.strip():
            raise FileUnreadableError("The file is empty: it needs a header line.", code="empty_file")
        delimiter = _detect_delimiter(first)
        names = next(csv.reader([first], delimiter=delimiter))
        return Header(tuple(name.strip().lower() for name in names), delimiter)

    def _json_records(self) -> list[dict[str, Any]]:
        with self._open_binary() as raw:
            try:
                data = json.loads(raw.read().decode("utf-8-sig"))
            except UnicodeDecodeError:
                raise FileUnreadableError("The file is not UTF-8 text.", code="bad_encoding") from None
            except ValueError as error:
                raise FileUnreadableError(
                    f"The file is not valid JSON: {error}.", code="malformed_file"
                ) from None
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise FileUnreadableError("A JSON import is an array of objects.", code="malformed_file")
        return data

    def rows(self) -> Iterator[ImportRow | tuple[int, str]]:
        """Rows in file order, numbered from 1 (the first data row). A row that cannot
        be read at all is yielded as ``(number, message)`` for the engine to report."""
        if self.format == JSON:
            for number, record in enumerate(self._json_records(), start=1):
                try:
                    cells = {str(key).strip().lower(): _cell(value) for key, value in record.items()}
                    _check_text([*cells, *cells.values()])
                    yield ImportRow(number, cells)
                except ValueError as error:
                    yield number, f"Row {number}: {error}."
            return
        header = self.header()
        with self._open_binary() as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            try:
                reader = csv.reader(text, delimiter=header.delimiter)
                next(reader, None)
                number = 0
                for values in reader:
                    if not any(value.strip() for value in values):
                        continue  # blank lines (often at the end of a file) are not rows
                    number += 1
                    if len(values) > len(header.columns):
                        yield (
                            number,
                            f"Row {number} has {len(values)} cells; the header has {len(header.columns)}.",
                        )
                        continue
                    try:
                        _check_text(values)
                    except ValueError as error:
                        yield number, f"Row {number}: {error}."
                        continue
                    yield ImportRow(
                        number,
                        {name: value.strip() for name, value in zip(header.columns, values, strict=False)},
                    )
            except UnicodeDecodeError:
                raise FileUnreadableError("The file is not UTF-8 text.", code="bad_encoding") from None
            except csv.Error as error:
                raise FileUnreadableError(
                    f"The CSV file cannot be read: {error}.", code="malformed_file"
                ) from None
            finally:
                text.detach()


class _Unclosable(io.BufferedIOBase):
    """Lets ``with`` blocks read a caller's stream without closing it."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def read(self, size: int | None = -1) -> bytes:
        return self._stream.read(size)

    def read1(self, size: int = -1) -> bytes:
        return self._stream.read(size)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        pass


def check_utf8(path: Path) -> None:
    """Fail fast on an upload that is not UTF-8, rather than in the middle of a job."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with open(path, "rb") as handle:
        try:
            while block := handle.read(1 << 20):
                decoder.decode(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise FileUnreadableError("The file is not UTF-8 text.", code="bad_encoding") from None


def file_size(relative: str) -> int:
    try:
        return os.path.getsize(path_of(relative))
    except OSError:
        return 0
