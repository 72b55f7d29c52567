"""Tokenize (or detokenize) selected columns of a CSV or JSON Lines file, row by row, resumably.

Memory is bounded by one batch of rows, whatever the file size. The output is written to
`OUTPUT.ztai-partial` and renamed to OUTPUT only once the last row is written and synced, so OUTPUT either
does not exist or is complete. Every `checkpoint_every` rows the partial output is synced and a
checkpoint (JSON, written atomically next to OUTPUT as `OUTPUT.ztai-checkpoint`) records:

    {"format": "zero-trust-ai/tokenize-checkpoint", "version": 1,
     "input": {"path", "size", "mtime_ns", "consumed_bytes", "consumed_sha256"},
     "input_offset", "output_offset", "rows_done", "lines_done",
     "parameters": {...what must not change: mode, domain, key check, columns, normalisation...}}

A resumed run refuses a checkpoint whose input changed (size, modification time, or the SHA-256 of
the bytes already consumed) or whose parameters differ; otherwise it truncates the partial output to
the checkpointed offset (dropping rows written after the last checkpoint), seeks the input and
continues. Deterministic and vault tokens are both functions of the value, so the rows after the
checkpoint come out byte-identical to an uninterrupted run.

Cells: in CSV every cell is a string; an empty cell stays empty (emptiness is visible anyway, and
tokenizing it would only add a constant token). In JSON Lines a selected field must be present in
every record: a string is tokenized, null stays null, an integer is tokenized as its decimal text
(so 42 and "42" share a token and an id column joins across CSV and JSON; detokenizing returns the
text "42"); any other type is refused. Only top-level fields are selectable. Rows are re-serialised:
CSV quoting becomes minimal, JSON becomes compact.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import itertools
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ztai_runtime.jsonlog import get_logger, log_decision
from ztai_runtime.tokenize.errors import AwsCallError, InputError, ResumeError, TokenizeError
from ztai_runtime.tokenize.normalize import Normalizer, composed

FORMATS = ("csv", "jsonl")
EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
PARTIAL_SUFFIX = ".ztai-partial"
CHECKPOINT_SUFFIX = ".ztai-checkpoint"
CHECKPOINT_FORMAT = "zero-trust-ai/tokenize-checkpoint"
CHECKPOINT_VERSION = 1
DEFAULT_CHECKPOINT_ROWS = 50_000
DEFAULT_BATCH_ROWS = 1_000
_BOM = b"\xef\xbb\xbf"
_HASH_BLOCK = 1 << 20
_JSON_KINDS = {dict: "object", int: "integer", str: "string"}

# A batch of cell values in, as many tokens (or values) out, in order.
Transform = Callable[[list[str]], list[str]]

_log = get_logger("ztai.tokenize")


def partial_path(destination: Path) -> Path:
    return destination.with_name(destination.name + PARTIAL_SUFFIX)


def checkpoint_path(destination: Path) -> Path:
    return destination.with_name(destination.name + CHECKPOINT_SUFFIX)


def format_for(path: Path) -> str:
    """The file format told by the extension."""
    try:
        return EXTENSIONS[path.suffix.lower()]
    except KeyError:
        raise InputError(f"cannot tell the format of {path} from its extension; use a name ending in "
                         f"{', '.join(EXTENSIONS)} or pass --format {'|'.join(FORMATS)}") from None


@dataclass(frozen=True)
class StreamJob:
    """One file to transform.

    parameters: what makes two runs produce the same output (mode, domain, key check...); a resume
        is refused unless they are equal. Columns, format and normalisation are added here.
    normalizers: column → steps (see `normalize.NORMALIZERS`), applied before `transform`.
    accept_integers: JSON integers are transformed as their decimal text (tokenize: yes).
    max_value_bytes: refuse longer values, naming their line (the vault has a limit).
    progress: told the input position in bytes after each batch (a progress bar), if given.
    """

    source: Path
    destination: Path
    file_format: str
    columns: tuple[str, ...]
    parameters: Mapping[str, Any] = field(default_factory=dict)
    normalizers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    accept_integers: bool = True
    max_value_bytes: int | None = None
    resume: bool = False
    force: bool = False
    checkpoint_every: int = DEFAULT_CHECKPOINT_ROWS
    batch_rows: int = DEFAULT_BATCH_ROWS
    event: str = "tokenize-file"
    # Told the input position (bytes) after each batch, for a progress display; not a parameter of
    # the output, so a resumed run may show progress differently.
    progress: Callable[[int], None] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class StreamResult:
    rows: int
    values: int
    resumed_from_row: int
    destination: Path


@dataclass
class _Position:
    input_offset: int = 0
    output_offset: int = 0
    rows_done: int = 0
    lines_done: int = 0


def _not_utf8(name: str, line: int, error: UnicodeDecodeError) -> InputError:
    return InputError(f"{name} line {line}: not UTF-8 text ({error.reason} at byte {error.start} of the "
                      "line); files must be UTF-8")


class _Sink:
    """What csv.writer writes into: collected, then encoded and written once per batch."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.write = self.parts.append

    def take(self) -> bytes:
        data = "".join(self.parts).encode("utf-8")
        self.parts.clear()
        return data


def run(job: StreamJob, transform: Transform) -> StreamResult:
    """Transform `job.source` into `job.destination`; see the module docstring for the contract."""
    validate(job)
    partial, checkpoint = partial_path(job.destination), checkpoint_path(job.destination)
    parameters = _parameters(job)
    interrupted = partial.exists() or checkpoint.exists()
    # Owner-only: a detokenized file holds the values themselves.
    with os.fdopen(os.open(partial, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600), "a+b") as output:
        # One run per destination: a second one would interleave its rows with ours.
        try:
            fcntl.flock(output.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"another run is writing {job.destination} ({partial.name} is locked)") from None
        position, hasher = _Position(), hashlib.sha256()
        if interrupted and not job.force:
            if not job.resume:
                raise ResumeError(f"an interrupted run left {partial.name}; pass --resume to continue "
                                  "it or --force to start over")
            if checkpoint.exists():
                position, hasher = _load_checkpoint(checkpoint, job, parameters)
        if position.rows_done == 0 and position.output_offset == 0:
            _remove(checkpoint)  # starting over: a stale checkpoint must not describe the new output
        if output.seek(0, os.SEEK_END) < position.output_offset:
            raise ResumeError(f"{partial.name} is shorter than its checkpoint says "
                              f"({position.output_offset} bytes); pass --force to start over")
        output.truncate(position.output_offset)  # rows written after the last checkpoint go
        resumed_from = position.rows_done
        try:
            with open(job.source, "rb") as source:
                state = _State(job, transform, source, output, checkpoint, parameters, position, hasher)
                values = _process_csv(state) if job.file_format == "csv" else _process_jsonl(state)
            output.flush()
            os.fsync(output.fileno())
            if job.destination.exists() and not job.force:
                raise InputError(f"{job.destination} appeared while this run was writing; pass --force "
                                 "to replace it")
            os.replace(partial, job.destination)
        except TokenizeError as error:
            # The input is wrong, or AWS refused before the first row was done: a partial output
            # holding no row is of no use, and none is left behind (nor a --resume to suggest).
            if (not isinstance(error, (ResumeError, AwsCallError))
                    or (isinstance(error, AwsCallError) and position.rows_done == 0)):
                _remove(checkpoint, partial)
            raise
    _sync_directory(job.destination.parent)
    _remove(checkpoint)
    log_decision(_log, job.event, source=str(job.source), destination=str(job.destination),
                 rows=position.rows_done, values=values, resumed_from_row=resumed_from,
                 columns=list(job.columns))
    return StreamResult(rows=position.rows_done, values=values, resumed_from_row=resumed_from,
                        destination=job.destination)


# -- validation and checkpoints --------------------------------------------------------------------
def validate(job: StreamJob) -> None:
    """Refuse a job whose files or options are wrong, before any work (or AWS call) is done."""
    if job.file_format not in FORMATS:
        raise InputError(f"format {job.file_format!r} is not supported; formats are {', '.join(FORMATS)}")
    if not job.source.is_file():
        raise InputError(f"input {job.source} does not exist or is not a file")
    if job.source.resolve() == job.destination.resolve():
        raise InputError("input and output are the same file; write the output elsewhere")
    if not job.columns or any(not column for column in job.columns):
        raise InputError("name at least one column, e.g. --columns email,phone")
    if len(set(job.columns)) != len(job.columns):
        raise InputError(f"a column is named twice in {', '.join(job.columns)}")
    if not job.destination.parent.is_dir():
        raise InputError(f"output directory {job.destination.parent} does not exist")
    # Only regular files are ever replaced, even with --force: a directory (or device) there would
    # be found at the final rename, after the whole input was processed.
    for path, role in ((job.destination, "output"), (partial_path(job.destination), "partial output"),
                       (checkpoint_path(job.destination), "checkpoint")):
        if path.exists() and not path.is_file():
            kind = "a directory" if path.is_dir() else "not a regular file"
            raise InputError(f"{role} {path} is {kind}; the output must be a file name (a new file, "
                             "or an existing file with --force)")
    if job.destination.exists() and not job.force:
        raise InputError(f"output {job.destination} exists; pass --force to replace it")
    if job.checkpoint_every < 1 or job.batch_rows < 1:
        raise InputError("checkpoint interval and batch size must be at least one row")
    partial, checkpoint = partial_path(job.destination), checkpoint_path(job.destination)
    if (partial.exists() or checkpoint.exists()) and not (job.resume or job.force):
        # Refused here, before any AWS call (tokenize derives its key first); `run` checks again
        # under the lock, as another run may have left one meanwhile.
        raise ResumeError(f"an interrupted run left {partial.name}; pass --resume to continue it or "
                          "--force to start over")
    if job.resume and not (partial.exists() or checkpoint.exists()):
        # Starting over silently would redo (and, in vault mode, re-log) work the user thinks is done.
        raise ResumeError(f"nothing to resume: there is no interrupted run of {job.destination} (no "
                          f"{partial.name} or {checkpoint.name} next to it); run without --resume "
                          "to start")
    check_input(job)


# -- the input's first lines, checked before any work --------------------------------------------
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# Separators a spreadsheet export may use instead of commas.
_OTHER_DELIMITERS = {";": "';'", "\t": "tab", "|": "'|'"}


def check_input(job: StreamJob) -> None:
    """Refuse an input whose header (CSV) or first record (JSON Lines) cannot serve the job:
    empty, not UTF-8, another delimiter, a selected column missing. Called before any AWS call,
    so a wrong file or column costs no KMS request and leaves no audit line."""
    name = job.source.name
    with open(job.source, "rb") as source:
        if job.file_format == "csv":
            first = source.readline()
            if first.startswith(_UTF16_BOMS):
                raise InputError(f"{name} is UTF-16 text (it starts with a UTF-16 byte-order mark); "
                                 "files must be UTF-8: save or export it as UTF-8")
            source.seek(0)
            header, _ = _read_csv_header(name, source)
            _check_csv_columns(name, header, job.columns)
        else:
            _check_first_record(name, source, job.columns)


def _read_csv_header(name: str, source: IO[bytes]) -> tuple[list[str], int]:
    """The header of a CSV file positioned at its start (a UTF-8 byte-order mark is skipped), and
    the number of lines it spans (a quoted name may hold a line break)."""
    if source.read(len(_BOM)) != _BOM:
        source.seek(0)
    reader = csv.reader(map(bytes.decode, source), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as error:
        raise InputError(f"{name} line {reader.line_num}: malformed CSV header ({error})") from None
    except UnicodeDecodeError as error:
        raise _not_utf8(name, reader.line_num + 1, error) from None
    if header is None:
        raise InputError(f"{name} is empty; a CSV input starts with a header line naming its columns")
    return header, reader.line_num


def _check_csv_columns(name: str, header: list[str], columns: tuple[str, ...]) -> None:
    absent = [column for column in columns if column not in header]
    if absent:
        hint = _delimiter_hint(header)
        raise InputError(f"{name}: column {', '.join(repr(c) for c in absent)} not in the header; "
                         f"the columns are {', '.join(header)}{hint}")
    repeated = [column for column in columns if header.count(column) > 1]
    if repeated:
        raise InputError(f"{name}: column {repeated[0]!r} appears twice in the header; "
                         "which one to tokenize is ambiguous")


def _delimiter_hint(header: list[str]) -> str:
    """Why a header may have come out as one column: the file uses another separator."""
    if len(header) != 1:
        return ""
    counts = {delimiter: header[0].count(delimiter) for delimiter in _OTHER_DELIMITERS}
    delimiter = max(counts, key=lambda d: counts[d])
    if not counts[delimiter]:
        return ""
    return (f". The file looks {_OTHER_DELIMITERS[delimiter]}-delimited; only comma-separated CSV "
            "is read: export it again with ',' as the separator (in a spreadsheet: CSV, "
            "comma-delimited, UTF-8)")


def _check_first_record(name: str, source: IO[bytes], columns: tuple[str, ...]) -> None:
    """The first non-blank line of a JSON Lines file must be an object holding every column."""
    for line, raw in enumerate(source, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            if line == 1 and raw.startswith(_UTF16_BOMS):
                raise InputError(f"{name} is UTF-16 text (it starts with a UTF-16 byte-order mark); "
                                 "files must be UTF-8: save or export it as UTF-8") from None
            raise _not_utf8(name, line, error) from None
        if line == 1:
            text = text.removeprefix("\ufeff")
        if not text.strip():
            continue
        record = _parse_record(name, text, line)
        for column in columns:
            if column not in record:
                raise InputError(f"{name} line {line}: field {column!r} is missing; every selected "
                                 "field must be present in every record (null for no value); the "
                                 f"fields are {', '.join(record) or 'none'}")
        return
    raise InputError(f"{name} has no record; a JSON Lines input holds one JSON object per line")


def _parameters(job: StreamJob) -> dict[str, Any]:
    # Through JSON, as stored, so a fresh run and a loaded checkpoint compare alike.
    document = {**job.parameters, "columns": list(job.columns), "file_format": job.file_format,
                "normalizers": {column: list(steps) for column, steps in job.normalizers.items()}}
    loaded: dict[str, Any] = json.loads(json.dumps(document, sort_keys=True))
    return loaded


def _fingerprint(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_size, status.st_mtime_ns


def _hash_region(hasher: Any, handle: IO[bytes], start: int, end: int) -> None:
    """Add bytes [start, end) of the input to `hasher`, reading through the page cache."""
    descriptor = handle.fileno()
    while start < end:
        block = os.pread(descriptor, min(_HASH_BLOCK, end - start), start)
        if not block:
            raise ResumeError("the input became shorter while it was being read")
        hasher.update(block)
        start += len(block)


def _load_checkpoint(path: Path, job: StreamJob, parameters: dict[str, Any]) -> tuple[_Position, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(document, dict) or (document.get("format"), document.get("version")) != (
                CHECKPOINT_FORMAT, CHECKPOINT_VERSION):
            raise ValueError(f"not a {CHECKPOINT_FORMAT} document of version {CHECKPOINT_VERSION}")
        recorded, stored = _field(document, "input", dict), _field(document, "parameters", dict)
        position = _Position(*(_count(document, name) for name in
                               ("input_offset", "output_offset", "rows_done", "lines_done")))
        recorded_size, recorded_mtime_ns = _count(recorded, "size"), _field(recorded, "mtime_ns", int)
        recorded_sha256 = _field(recorded, "consumed_sha256", str)
    except (OSError, ValueError, RecursionError) as error:
        raise ResumeError(f"checkpoint {path.name} cannot be read ({error}); pass --force to start "
                          "over") from None
    differing = sorted(key for key in parameters.keys() | stored.keys()
                       if parameters.get(key) != stored.get(key))
    if differing:
        was = {key: stored.get(key) for key in differing}
        now = {key: parameters.get(key) for key in differing}
        raise ResumeError(f"the checkpoint was written with {was}, this run asks {now}; resume with "
                          "the same options or pass --force to start over")
    size, mtime_ns = _fingerprint(job.source)
    changed = []
    if size != recorded_size:
        changed.append(f"size {recorded_size} → {size} bytes")
    if mtime_ns != recorded_mtime_ns:
        changed.append("modification time")
    hasher = hashlib.sha256()
    if not changed:
        with open(job.source, "rb") as source:
            _hash_region(hasher, source, 0, position.input_offset)
        if hasher.hexdigest() != recorded_sha256:
            changed.append(f"content of the first {position.input_offset} bytes")
    if changed:
        raise ResumeError(f"input {job.source} is not the file the checkpoint was taken from "
                          f"({'; '.join(changed)}); pass --force to start over on the new input")
    return position, hasher


def _field(document: dict[str, Any], name: str, kind: type) -> Any:
    value = document.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{name!r} is {json.dumps(value)[:40]}, not a JSON {_JSON_KINDS[kind]}")
    return value


def _count(document: dict[str, Any], name: str) -> int:
    value: int = _field(document, name, int)
    if value < 0:
        raise ValueError(f"{name!r} is {value}, not a count of bytes, rows or lines")
    return value


def _write_checkpoint(state: _State) -> None:
    state.output.flush()
    os.fsync(state.output.fileno())
    position = state.position
    _hash_region(state.hasher, state.source, state.hashed_upto, position.input_offset)
    state.hashed_upto = position.input_offset
    size, mtime_ns = _fingerprint(state.job.source)
    document = {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
        "input": {"path": str(state.job.source), "size": size, "mtime_ns": mtime_ns,
                  "consumed_bytes": position.input_offset,
                  "consumed_sha256": state.hasher.hexdigest()},
        "input_offset": position.input_offset, "output_offset": position.output_offset,
        "rows_done": position.rows_done, "lines_done": position.lines_done,
        "parameters": state.parameters,
    }
    temporary = state.checkpoint.with_name(state.checkpoint.name + ".tmp")
    with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w",
                   encoding="utf-8") as handle:
        json.dump(document, handle, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, state.checkpoint)
    _sync_directory(state.checkpoint.parent)


def _sync_directory(directory: Path) -> None:
    """Make a rename durable: it lives in the directory's entry, not in the file."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".tmp").unlink(missing_ok=True)


# -- the row loops ---------------------------------------------------------------------------------
class _State:
    """Everything a row loop needs, and the bookkeeping it shares with checkpoints."""

    def __init__(self, job: StreamJob, transform: Transform, source: IO[bytes], output: IO[bytes],
                 checkpoint: Path, parameters: dict[str, Any], position: _Position, hasher: Any) -> None:
        self.job, self.transform = job, transform
        self.source, self.output, self.checkpoint = source, output, checkpoint
        self.parameters, self.position, self.hasher = parameters, position, hasher
        self.hashed_upto = position.input_offset
        self.last_checkpoint_rows = position.rows_done
        self.normalizers: dict[str, Normalizer] = composed(job.normalizers)
        self.name = job.source.name

    def apply(self, values: list[str], first_line: int, last_line: int) -> list[str]:
        """`transform(values)`, with the lines they came from named in any error."""
        if not values:
            return []
        try:
            results = self.transform(values)
        except TokenizeError as error:
            if isinstance(error, AwsCallError):
                raise
            raise type(error)(f"{self.name} lines {first_line}-{last_line}: {error}") from error
        if len(results) != len(values):
            raise RuntimeError(f"transform returned {len(results)} results for {len(values)} values")
        return results

    def check_size(self, value: str, line: int, column: str) -> None:
        limit = self.job.max_value_bytes
        if limit is not None and len(value) * 4 > limit and len(value.encode("utf-8")) > limit:
            raise InputError(f"{self.name} line {line}, column {column}: the value is "
                             f"{len(value.encode('utf-8'))} bytes; at most {limit} are allowed")

    def commit(self, data: bytes, rows: int, input_offset: int, line: int) -> None:
        """Append a batch's output; checkpoint when enough rows have passed since the last one."""
        self.output.write(data)
        position = self.position
        position.output_offset += len(data)
        position.input_offset, position.rows_done, position.lines_done = (
            input_offset, position.rows_done + rows, line)
        if position.rows_done - self.last_checkpoint_rows >= self.job.checkpoint_every:
            _write_checkpoint(self)
            self.last_checkpoint_rows = position.rows_done
        if self.job.progress is not None:
            self.job.progress(input_offset)


def _csv_header(state: _State) -> tuple[list[str], str, bool, int, int]:
    """(header, line terminator, BOM present, offset and line number after the header), read from
    the start of the file (a resumed run needs the header too)."""
    source = state.source
    source.seek(0)
    first = source.readline()
    bom = first.startswith(_BOM)
    terminator = "\r\n" if first.endswith(b"\r\n") else "\n"
    source.seek(0)
    header, lines = _read_csv_header(state.name, source)
    return header, terminator, bom, source.tell(), lines


def _process_csv(state: _State) -> int:
    job, position, source = state.job, state.position, state.source
    header, terminator, bom, header_end, header_lines = _csv_header(state)
    _check_csv_columns(state.name, header, job.columns)
    selected = [(header.index(column), column, state.normalizers.get(column)) for column in job.columns]
    indexes = [index for index, _, _ in selected]
    width, limit = len(header), job.max_value_bytes
    sink = _Sink()
    writer = csv.writer(sink, lineterminator=terminator)
    if position.output_offset == 0:
        writer.writerow(header)
        state.commit((_BOM if bom else b"") + sink.take(), 0, header_end, header_lines)
    source.seek(position.input_offset)
    # Lines go to the csv reader exactly as it asks for them, so after each record the file's
    # position is the end of that record: the offset a checkpoint records.
    reader = csv.reader(map(bytes.decode, source), strict=True)
    base = position.lines_done
    transformed = 0
    while True:
        batch: list[list[str]] = []
        row_lines: list[int] = []
        first_line = base + reader.line_num + 1
        try:
            for row in itertools.islice(reader, job.batch_rows):
                if not row and width > 1:
                    # Copied through, it would count as a row while a short row is refused.
                    raise InputError(f"{state.name} line {base + reader.line_num}: a blank line; every "
                                     f"row needs one field per column ({width}), so remove blank "
                                     "lines (an empty value is an empty field: ,,)")
                if len(row) != width and row:
                    raise InputError(f"{state.name} line {base + reader.line_num}: {len(row)} fields, "
                                     f"the header has {width}; every row needs one field per column")
                batch.append(row)
                row_lines.append(reader.line_num)
        except csv.Error as error:
            raise InputError(f"{state.name} line {base + reader.line_num}: malformed CSV ({error})") from None
        except UnicodeDecodeError as error:
            raise _not_utf8(state.name, base + reader.line_num + 1, error) from None
        if not batch:
            break
        last_line = base + reader.line_num
        values: list[str] = []
        for row, line in zip(batch, row_lines, strict=True):
            if not row:
                continue  # a blank line: passed through as one
            for index, column, normalize in selected:
                value = row[index]
                if value and normalize is not None:
                    value = row[index] = normalize(value)  # may become "", which stays as it is
                if value:
                    if limit is not None:
                        state.check_size(value, base + line, column)
                    values.append(value)
        results = iter(state.apply(values, first_line, last_line))
        for row in batch:
            if row:
                for index in indexes:
                    if row[index]:
                        row[index] = next(results)
        transformed += len(values)
        writer.writerows(batch)
        state.commit(sink.take(), len(batch), source.tell(), last_line)
    return transformed


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _process_jsonl(state: _State) -> int:
    job, position, source = state.job, state.position, state.source
    selected = [(column, state.normalizers.get(column)) for column in job.columns]
    limit = job.max_value_bytes
    source.seek(position.input_offset)
    line = position.lines_done
    transformed = 0
    while True:
        records: list[dict[str, Any] | None] = []
        cells: list[tuple[int, str]] = []  # (record index, field) of each transformed value
        values: list[str] = []
        first_line = line + 1
        for raw in itertools.islice(source, job.batch_rows):
            line += 1
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise _not_utf8(state.name, line, error) from None
            if line == 1:
                text = text.removeprefix("\ufeff")  # a byte-order mark: not part of the record
            if not text.strip():
                records.append(None)  # a blank line: passed through as one
                continue
            record = _parse_record(state.name, text, line)
            for column, normalize in selected:
                value = _json_cell(state, record, column, line)
                if value and normalize is not None:
                    value = record[column] = normalize(value)  # may become "", which stays as it is
                if value:
                    if limit is not None:
                        state.check_size(value, line, column)
                    cells.append((len(records), column))
                    values.append(value)
            records.append(record)
        if not records:
            break
        for (index, column), result in zip(cells, state.apply(values, first_line, line), strict=True):
            target = records[index]
            assert target is not None  # cells only point at records
            target[column] = result
        transformed += len(values)
        try:
            data = "".join("\n" if entry is None else
                           json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n"
                           for entry in records).encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate escape ("\ud800") parses but has no UTF-8 form.
            raise InputError(f"{state.name} lines {first_line}-{line}: a string holds a lone UTF-16 "
                             "surrogate escape, which cannot be written as UTF-8") from None
        except RecursionError:
            # Parsed just under the interpreter's nesting limit, but written from deeper in the stack.
            raise _too_deep(state.name, f"lines {first_line}-{line}") from None
        state.commit(data, len(records), source.tell(), line)
    return transformed


def _exact_float(text: str) -> float:
    """Rows are re-serialised: a number that would not be written back as it was read (1E2,
    0.10000000000000000555, 1e400) is refused instead of silently changed."""
    value = float(text)
    written = json.dumps(value)
    if written != text:
        raise ValueError(f"the number {text} would be written back as {written}; quote it as a "
                         "string to keep it exactly")
    return value


class _DuplicateFieldError(Exception):
    """A JSON object names a field twice (not a ValueError: it is not reported as malformed)."""


def _unique_fields(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal names; the first value would vanish from the output.
    record: dict[str, Any] = {}
    for key, value in pairs:
        if key in record:
            raise _DuplicateFieldError(key)
        record[key] = value
    return record


def _parse_record(name: str, text: str, line: int) -> dict[str, Any]:
    try:
        record = json.loads(text, parse_constant=_reject_constant, parse_float=_exact_float,
                            object_pairs_hook=_unique_fields)
    except _DuplicateFieldError as duplicate:
        raise InputError(f"{name} line {line}: field {duplicate.args[0]!r} appears twice in one object; "
                         "each field may appear once (otherwise the first value would be silently "
                         "dropped)") from None
    except ValueError as error:
        raise InputError(f"{name} line {line}: malformed JSON ({error}); each line must be one "
                         "JSON object") from None
    except RecursionError:
        raise _too_deep(name, f"line {line}") from None
    if not isinstance(record, dict):
        raise InputError(f"{name} line {line}: a JSON {type(record).__name__}, not an object; "
                         "each line must be one JSON object")
    return record


def _too_deep(name: str, where: str) -> InputError:
    # The limit is the interpreter's recursion limit (about a thousand levels, less the stack in use).
    return InputError(f"{name} {where}: JSON nested too deeply (arrays and objects within each other "
                      "hundreds of levels deep); records may nest a few hundred levels at most")


def _json_cell(state: _State, record: Mapping[str, Any], column: str, line: int) -> str | None:
    if column not in record:
        raise InputError(f"{state.name} line {line}: field {column!r} is missing; every selected field "
                         "must be present in every record (null for no value)")
    value = record[column]
    if value is None or isinstance(value, str):
        return value  # null and "" are passed through by the caller, as empty CSV cells are
    if state.job.accept_integers and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    allowed = "a string, an integer or null" if state.job.accept_integers else "a string or null"
    kind = {bool: "boolean", float: "number with a fraction or exponent", list: "array",
            dict: "object"}.get(type(value), type(value).__name__)
    raise InputError(f"{state.name} line {line}: field {column!r} is a {kind}; it must be {allowed}")
