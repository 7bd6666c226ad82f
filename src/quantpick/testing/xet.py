"""Xet storage as the loopback CAS lays it out: file hashes, xorbs, chunks, reconstructions.

A file is cut into fixed chunks of `CHUNK_BYTES` and consecutive chunks are grouped into xorbs of
`XORB_CHUNKS`. A xorb is served as its chunks in the real CAS chunk format: an 8-byte header
(version 0, compressed length as 3 bytes little-endian, compression scheme 0 = none, uncompressed
length as 3 bytes little-endian) followed by the bytes. Nothing is stored: a xorb's bytes are read
from the file when asked for.

The hashes are not Xet's merkle hashes: hf_xet checks chunk headers and term lengths on download,
never chunk or file hashes (shared/HUB_API.md), so a stable 64-hex name per file and per xorb is
all it needs. They are derived from the file's sha256, so they change when the file does.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from quantpick.testing.store import Entry

CHUNK_BYTES = 64 << 10
XORB_CHUNKS = 128  # 8 MiB of file per xorb
HEADER_BYTES = 8
# a gated repo's tree shows this instead of the hash to a caller without access
MASKED_HASH = "*" * 64
_PIECE_BYTES = 1 << 20
# the signed URL of one xorb of a file
XorbUrl = Callable[["XetFile", int], str]


def file_hash(sha256: str) -> str:
    return hashlib.sha256(b"quantpick-xet-file\0" + sha256.encode()).hexdigest()


def xorb_hash(file_id: str, index: int) -> str:
    return hashlib.sha256(f"quantpick-xorb\0{file_id}\0{index}".encode()).hexdigest()


def chunk_header(length: int) -> bytes:
    """Version 0, compressed length, scheme 0 (none), uncompressed length; lengths 3 bytes LE."""
    three = struct.pack("<I", length)[:3]
    return bytes([0]) + three + bytes([0]) + three


@dataclass(frozen=True)
class XetFile:
    """One Xet-backed file: the repo that holds it (for token checks) and its bytes on disk."""

    repo_id: str
    entry: Entry

    @property
    def hash(self) -> str:
        assert self.entry.lfs_sha256 is not None
        return file_hash(self.entry.lfs_sha256)

    @property
    def chunk_count(self) -> int:
        return -(-self.entry.size // CHUNK_BYTES)

    @property
    def xorb_count(self) -> int:
        return -(-self.chunk_count // XORB_CHUNKS)

    def chunks_in(self, xorb: int) -> int:
        return min(XORB_CHUNKS, self.chunk_count - xorb * XORB_CHUNKS)

    def chunk_length(self, global_chunk: int) -> int:
        start = global_chunk * CHUNK_BYTES
        return min(CHUNK_BYTES, self.entry.size - start)

    def xorb_size(self, xorb: int) -> int:
        first = xorb * XORB_CHUNKS
        n = self.chunks_in(xorb)
        return n * HEADER_BYTES + sum(self.chunk_length(first + i) for i in range(n))

    def reconstruction(
        self, first_byte: int, last_byte: int, xorb_url: XorbUrl
    ) -> dict[str, object]:
        """QueryReconstructionResponse (xet-core cas_types) for file bytes [first, last]."""
        g0, g1 = first_byte // CHUNK_BYTES, last_byte // CHUNK_BYTES
        terms: list[dict[str, object]] = []
        fetch_info: dict[str, list[dict[str, object]]] = {}
        g = g0
        while g <= g1:
            xorb = g // XORB_CHUNKS
            start = g - xorb * XORB_CHUNKS
            end = min(self.chunks_in(xorb), g1 - xorb * XORB_CHUNKS + 1)  # exclusive
            name = xorb_hash(self.hash, xorb)
            length = sum(self.chunk_length(xorb * XORB_CHUNKS + i) for i in range(start, end))
            terms.append({"hash": name, "unpacked_length": length, "range": _span(start, end)})
            first = self._chunk_offset(xorb, start)
            last = self._chunk_offset(xorb, end) - 1  # HTTP range: inclusive end
            url = xorb_url(self, xorb)
            fetch_info.setdefault(name, []).append(
                {"range": _span(start, end), "url": url, "url_range": _span(first, last)}
            )
            g = xorb * XORB_CHUNKS + end
        return {
            "offset_into_first_range": first_byte - g0 * CHUNK_BYTES,
            "terms": terms,
            "fetch_info": fetch_info,
        }

    def _chunk_offset(self, xorb: int, local_chunk: int) -> int:
        first = xorb * XORB_CHUNKS
        return local_chunk * HEADER_BYTES + sum(
            self.chunk_length(first + i) for i in range(local_chunk)
        )

    def xorb_pieces(self, xorb: int, start: int, count: int) -> Iterator[bytes]:
        """Bytes [start, start + count) of xorb `xorb` as served, in pieces of about 1 MiB."""
        end = start + count
        first_chunk = xorb * XORB_CHUNKS
        offset = 0  # xorb offset of the current chunk's header
        out = bytearray()
        with open(self.entry.abs_path, "rb", buffering=0) as f:
            fd = f.fileno()
            for i in range(self.chunks_in(xorb)):
                g = first_chunk + i
                length = self.chunk_length(g)
                stop = offset + HEADER_BYTES + length
                if stop > start and offset < end:
                    whole = chunk_header(length) + os.pread(fd, length, g * CHUNK_BYTES)
                    out += whole[max(0, start - offset) : min(len(whole), end - offset)]
                    if len(out) >= _PIECE_BYTES:
                        yield bytes(out)
                        out.clear()
                offset = stop
                if offset >= end:
                    break
        if out:
            yield bytes(out)


def _span(start: int, end: int) -> dict[str, int]:
    return {"start": start, "end": end}


class XetTokens:
    """Short-lived CAS access tokens, each valid for one repo, signed so the CAS can check them."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _sign(self, repo_id: str, expires: int) -> str:
        msg = f"xet-read\n{repo_id}\n{expires}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()[:32]

    def issue(self, repo_id: str, ttl_s: float) -> tuple[str, int]:
        expires = int(time.time() + ttl_s)
        return f"xet_{expires}_{self._sign(repo_id, expires)}", expires

    def check(self, token: str | None, repo_id: str) -> str | None:
        """None when `token` reads `repo_id` now; otherwise why not."""
        if not token:
            return "missing Xet access token"
        _, _, rest = token.partition("xet_")
        expires_text, _, sig = rest.partition("_")
        if not expires_text.isdigit() or not hmac.compare_digest(
            self._sign(repo_id, int(expires_text)), sig
        ):
            return "invalid Xet access token"
        if time.time() > int(expires_text):
            return "Xet access token expired"
        return None
