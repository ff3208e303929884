"""CSV files as they arrive: their separator, encoding and header, checked before Polars reads them.

Polars reads CSV fast but says little when a file is not what it expects: a ``;`` file
reads as one column, a Windows export as "invalid utf-8 sequence", a row with an extra
field as "found more fields than defined". This module looks at the head of each file
first and, when Polars fails, reads the file again to say where:

* the separator is detected from the first lines (``,``, ``;``, tab or ``|``: the one
  that splits every line into the same number of fields, the most) unless
  ``source.separator`` names one;
* text must be UTF-8 (a byte-order mark is fine) unless ``source.encoding`` says
  otherwise; a file that is not names the first line that is not, and the fix;
* an empty file, a header with no rows and two columns with one name are errors that
  name the file (and the columns);
* ``latin-1``, ``cp1252`` and ``utf-16`` files are re-encoded to UTF-8 on the way in.

Messages name files, lines, columns and counts, never a value.
"""

from __future__ import annotations

import codecs
import csv
import io
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import fsspec

from synth.config import SourceOptions
from synth.errors import SourceError
from synth.io.columns import check_unique_names
from synth.io.faults import storage_error

CANDIDATE_SEPARATORS = (",", ";", "\t", "|")
#: Encodings Polars reads itself; the others are re-encoded to UTF-8 first.
POLARS_ENCODINGS = ("utf8", "utf8-lossy")
_HEAD_BYTES = 1 << 18  # the header and the first lines, with room for long cells
_HEAD_RECORDS = 100
_CHUNK_BYTES = 1 << 20
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_SEPARATOR_NAMES = {",": "','", ";": "';'", "\t": "tab", "|": "'|'"}


@dataclass(frozen=True)
class CsvLayout:
    """What the head of a CSV file shows: its separator and its header."""

    separator: str
    header: tuple[str, ...]
    detected: bool  # the separator was detected, not declared

    def note(self, uri: str) -> str | None:
        """The log line for a separator that was detected and is not a comma."""
        if not self.detected or self.separator == ",":
            return None
        return (f"{uri}: columns are separated by {_SEPARATOR_NAMES[self.separator]} (detected from its first lines; "
                "set source.separator to choose)")


def inspect_csv(uri: str, options: SourceOptions) -> CsvLayout:
    """Check the head of one CSV file and find its separator and header.

    Raises:
        SourceError: the file is empty, has a header and no rows, is not in the declared
            encoding, or names two columns alike.
    """
    head, whole = _head(uri)
    if not head.strip():
        raise SourceError(f"{uri}: the file is empty" + (" (0 bytes)" if not head else " (blank lines only)"))
    text = _decode_head(uri, head, whole, options.encoding)
    if not whole:  # the last line may be cut short
        text = text[: text.rfind("\n") + 1] or text
    declared = options.separator != "auto"
    separator = options.separator if declared else _detect_separator(text)
    records = _records(text, separator)
    if not records:
        raise SourceError(f"{uri}: the file is empty (blank lines only)")
    header = tuple(records[0])
    check_unique_names(uri, header)
    if whole and not any(any(field.strip() for field in r) for r in records[1:]):
        raise SourceError(f"{uri}: the file has a header ({len(header)} columns) but no rows")
    return CsvLayout(separator=separator, header=header, detected=not declared)


def explain_failure(uri: str, options: SourceOptions, layout: CsvLayout, error: Exception) -> SourceError:
    """A :class:`SourceError` saying where in ``uri`` Polars' ``error`` comes from.

    Reads the file again (streamed) to find the first line that is not in the encoding or
    has more fields than the header; falls back to Polars' own first line.
    """
    if options.encoding == "utf8":
        line = _first_undecodable_line(uri)
        if line is not None:
            return SourceError(_not_utf8(uri, line))
    line, fields = _first_long_record(uri, options, layout)
    if line is not None:
        return SourceError(
            f"{uri}: the record ending on line {line} has {fields} fields but the header has {len(layout.header)}; "
            f"quote the field that holds a {_SEPARATOR_NAMES.get(layout.separator, repr(layout.separator))}, "
            "or fix that row"
        )
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return SourceError(f"cannot read CSV {uri}: {first}")


def polars_encoding(options: SourceOptions) -> str:
    """The encoding to give Polars: the file's own, or UTF-8 after re-encoding."""
    return options.encoding if options.encoding in POLARS_ENCODINGS else "utf8"


def needs_reencoding(options: SourceOptions) -> bool:
    return options.encoding not in POLARS_ENCODINGS


def reencode_to_file(uri: str, encoding: str, target: Path) -> Path:
    """Write ``uri`` (in ``encoding``) to ``target`` as UTF-8, streamed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with fsspec.open(uri, "rb", compression="infer") as raw, open(target, "w", encoding="utf-8") as out:
            shutil.copyfileobj(codecs.getreader(encoding)(raw), out, _CHUNK_BYTES)
    except UnicodeDecodeError as exc:
        raise SourceError(f"{uri}: not {encoding} text ({exc.reason}); check source.encoding") from None
    return target


def reencode_to_bytes(uri: str, encoding: str) -> bytes:
    """``uri`` (in ``encoding``) as UTF-8 bytes, for a file read whole."""
    try:
        with fsspec.open(uri, "rb", compression="infer") as raw:
            return raw.read().decode(encoding).encode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{uri}: not {encoding} text ({exc.reason}); check source.encoding") from None


# -- the head -------------------------------------------------------------------------------
def _head(uri: str) -> tuple[bytes, bool]:
    """The first bytes of the (decompressed) file, and whether that is all of it."""
    try:
        with fsspec.open(uri, "rb", compression="infer") as raw:
            head = raw.read(_HEAD_BYTES)
            whole = len(head) < _HEAD_BYTES or not raw.read(1)
    except (OSError, EOFError) as exc:
        raise storage_error(exc, f"cannot read CSV {uri}") from None
    return head, whole


def _decode_head(uri: str, head: bytes, whole: bool, encoding: str) -> str:
    if encoding == "utf8":
        if head.startswith(_UTF16_BOMS):
            raise SourceError(f"{uri}: the file is UTF-16 text; save it as UTF-8, or set source.encoding: utf-16")
        try:
            return head.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            if whole or exc.start < len(head) - 3:  # not a character cut in two at the end of the head
                raise SourceError(_not_utf8(uri, head[: exc.start].count(b"\n") + 1)) from None
            return head[: exc.start].decode("utf-8-sig")
    if encoding == "utf8-lossy":
        return head.decode("utf-8-sig", errors="replace")
    return head.decode(encoding, errors="replace")  # a character cut at the end of the head is harmless


def _not_utf8(uri: str, line: int) -> str:
    return (f"{uri}: line {line} is not UTF-8 text; save the file as UTF-8, or set source.encoding to its encoding "
            "(cp1252 or latin-1 for most Windows exports; utf8-lossy replaces the bytes that are not UTF-8)")


def _detect_separator(text: str) -> str:
    """The candidate that splits every sampled line into the same number (> 1) of fields, the most."""
    best, best_width = ",", 1
    for candidate in CANDIDATE_SEPARATORS:
        records = [r for r in _records(text, candidate) if r]
        widths = {len(r) for r in records}
        if len(widths) == 1 and (width := widths.pop()) > best_width:
            best, best_width = candidate, width
    return best


def _records(text: str, separator: str) -> list[list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=separator)
    records = []
    try:
        for record in reader:
            records.append(record)
            if len(records) >= _HEAD_RECORDS:
                break
    except csv.Error:
        pass  # a quote left open in the head: judged on the records before it
    return records


# -- a second look after Polars failed --------------------------------------------------------
def _first_undecodable_line(uri: str) -> int | None:
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines = 1
    with fsspec.open(uri, "rb", compression="infer") as raw:
        while chunk := raw.read(_CHUNK_BYTES):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                return lines + chunk[: exc.start].count(b"\n")
            lines += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return lines
    return None


def _first_long_record(uri: str, options: SourceOptions, layout: CsvLayout) -> tuple[int | None, int]:
    """The line on which the first record with more fields than the header ends, and its field count."""
    width = len(layout.header)
    encoding = "utf-8-sig" if options.encoding in POLARS_ENCODINGS else options.encoding
    with fsspec.open(uri, "rb", compression="infer") as raw:
        text = io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="")
        reader = csv.reader(text, delimiter=layout.separator)
        try:
            for record in _skip_header(reader):
                if len(record) > width:
                    return reader.line_num, len(record)
        except csv.Error:
            return None, 0
    return None, 0


def _skip_header(reader) -> Iterator[list[str]]:
    next(reader, None)
    yield from reader
