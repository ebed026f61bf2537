"""Hudi log files read block by block, without Hudi: what the verifier and the purge need to know.

A log file is a sequence of blocks, each ``#HUDI#`` + total size (long) + format version (int) +
block type (int) + header (int count, then per entry int key, int length, UTF-8 value) + content
length (long) + content + footer (same form as the header) + block length (long), all big-endian
(Hudi's ``HoodieLogFileReader``). A crashed writer can leave a partial block: whatever does not
parse is handed back as a ``corrupt`` block covering its bytes, so nothing goes unread.

Reading the format here rather than through Hudi's classes keeps the verifier independent of the
writer it checks, and lets it run in Spark's Python workers next to the files.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

MAGIC = b"#HUDI#"

# HoodieLogBlockType ordinals (Hudi 1.0).
COMMAND, DELETE, CORRUPT, AVRO_DATA, HFILE_DATA, PARQUET_DATA, CDC_DATA = range(7)
BLOCK_NAMES = {
    COMMAND: "command",
    DELETE: "delete",
    CORRUPT: "corrupt",
    AVRO_DATA: "avro",
    HFILE_DATA: "hfile",
    PARQUET_DATA: "parquet",
    CDC_DATA: "cdc",
}
# HeaderMetadataType ordinals that matter here.
HEADER_INSTANT_TIME = 0
HEADER_SCHEMA = 2

_LONG = struct.Struct(">q")
_INT = struct.Struct(">i")


@dataclass(frozen=True)
class LogBlock:
    """One block: its type, header, and where its content lies in the file's bytes."""

    block_type: int
    start: int  # offset of the block (its magic), or of the unparsable bytes for a corrupt block
    end: int
    content_start: int
    content_end: int
    header: dict[int, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return BLOCK_NAMES.get(self.block_type, f"type-{self.block_type}")


class _Truncated(Exception):
    pass


def _read(data: bytes, fmt: struct.Struct, pos: int) -> tuple[int, int]:
    if pos + fmt.size > len(data):
        raise _Truncated
    return fmt.unpack_from(data, pos)[0], pos + fmt.size


def _metadata(data: bytes, pos: int) -> tuple[dict[int, str], int]:
    count, pos = _read(data, _INT, pos)
    if not 0 <= count < 1024:
        raise _Truncated
    entries: dict[int, str] = {}
    for _ in range(count):
        key, pos = _read(data, _INT, pos)
        length, pos = _read(data, _INT, pos)
        if length < 0 or pos + length > len(data):
            raise _Truncated
        entries[key] = data[pos : pos + length].decode("utf-8", errors="replace")
        pos += length
    return entries, pos


def _parse_block(data: bytes, start: int) -> LogBlock:
    pos = start + len(MAGIC)
    size, pos = _read(data, _LONG, pos)
    end = pos + size
    if size <= 0 or end > len(data):
        raise _Truncated
    version, pos = _read(data, _INT, pos)
    if version < 1:
        raise _Truncated  # format version 0 (before Hudi 0.4) has no typed blocks
    block_type, pos = _read(data, _INT, pos)
    header, pos = _metadata(data, pos)
    content_length, pos = _read(data, _LONG, pos)
    content_start, content_end = pos, pos + content_length
    if content_length < 0 or content_end > end:
        raise _Truncated
    _, pos = _metadata(data, content_end)  # footer
    _, pos = _read(data, _LONG, pos)  # block length, a reverse pointer
    if pos != end:
        raise _Truncated
    return LogBlock(block_type, start, end, content_start, content_end, header)


def blocks(data: bytes) -> Iterator[LogBlock]:
    """Every block of a log file's bytes, in order; unparsable stretches as ``corrupt`` blocks."""
    pos = 0
    while pos < len(data):
        if data.startswith(MAGIC, pos):
            try:
                block = _parse_block(data, pos)
            except _Truncated:
                block = None
            if block is not None:
                yield block
                pos = block.end
                continue
        nxt = data.find(MAGIC, pos + 1)
        end = len(data) if nxt == -1 else nxt
        yield LogBlock(CORRUPT, pos, end, pos, end)
        pos = end


def block_types(read_at: object, size: int) -> list[int]:
    """Types of the blocks of a log file, reading only each block's first bytes.

    ``read_at(n, offset)`` returns ``n`` bytes at ``offset`` (pyarrow's ``RandomAccessFile.read_at``).
    A stretch that does not parse counts as one ``corrupt`` block and ends the walk.
    """
    types: list[int] = []
    pos = 0
    head = len(MAGIC) + _LONG.size + 2 * _INT.size
    while pos < size:
        chunk = bytes(read_at(head, pos))  # type: ignore[operator]
        if len(chunk) < head or not chunk.startswith(MAGIC):
            types.append(CORRUPT)
            break
        block_size = _LONG.unpack_from(chunk, len(MAGIC))[0]
        block_type = _INT.unpack_from(chunk, len(MAGIC) + _LONG.size + _INT.size)[0]
        end = pos + len(MAGIC) + _LONG.size + block_size
        if block_size <= 0 or end > size:
            types.append(CORRUPT)
            break
        types.append(block_type)
        pos = end
    return types
