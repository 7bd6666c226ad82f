"""GGUF headers read over HTTP Range from the loopback Hub: shape and weight bytes, bounded."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from gguf import GGUFReader

from qp import list_json
from quantpick.hub.gguf_header import FIRST_BYTES, HeaderError, read_header, shape_from_header
from quantpick.records import Source
from quantpick.testing.builder import make_repo
from quantpick.testing.gguf_files import GgufModel, gguf_bytes
from quantpick.testing.server import HubServer


def _from_memory(data: bytes) -> tuple[object, int]:
    calls: list[tuple[int, int]] = []

    def fetch(start: int, end: int) -> bytes:
        calls.append((start, end))
        return data[start : end + 1]

    header, fetched = read_header("m.gguf", len(data), fetch)
    return header, len(calls) if fetched else 0


@pytest.mark.parametrize(
    "model",
    [
        GgufModel(),
        GgufModel(arch="gemma2", sliding_window=4096, tied=True, ggml_type="Q4_K", hidden=256),
        GgufModel(vocab=5000, ggml_type="F16"),
    ],
)
def test_reader_agrees_with_gguf_package(model: GgufModel) -> None:
    data = gguf_bytes(model)
    header, _ = read_header("m.gguf", len(data), lambda s, e: data[s : e + 1])
    with tempfile.NamedTemporaryFile(suffix=".gguf") as tmp:
        tmp.write(data)
        tmp.flush()
        oracle = GGUFReader(tmp.name)
        assert header.header_bytes == oracle.data_offset
        assert [(t.name, t.ggml_type, t.size_bytes) for t in header.tensors] == [
            (t.name, t.tensor_type.name, int(t.n_bytes)) for t in oracle.tensors
        ]
        assert header.parameter_count == sum(int(t.n_elements) for t in oracle.tensors)
    assert header.architecture == model.arch
    assert (header.num_layers, header.vocab_size, header.context_length_tokens) == (
        model.layers,
        model.vocab,
        model.context,
    )
    assert header.sliding_window_tokens == model.sliding_window
    shape = shape_from_header(header)
    assert shape is not None
    assert shape.source is Source.HEADER
    assert (shape.num_kv_heads, shape.head_dim) == (model.kv_heads, model.hidden // model.heads)
    assert shape.tie_word_embeddings is model.tied


def test_a_long_header_is_read_in_a_few_growing_ranges() -> None:
    data = gguf_bytes(GgufModel(vocab=200_000, hidden=32, tied=True))
    header, calls = _from_memory(data)
    assert header.vocab_size == 200_000  # type: ignore[attr-defined]
    assert header.header_bytes > FIRST_BYTES  # type: ignore[attr-defined]
    assert calls == 2


def test_not_a_gguf_file_is_refused() -> None:
    with pytest.raises(HeaderError):
        read_header("x.gguf", 4096, lambda s, e: b"\0" * (e - s + 1))


@pytest.mark.parametrize("xet", [True, False], ids=["xet", "plain-lfs"])
def test_gguf_repo_without_config_gets_its_shape_from_headers(tmp_path: Path, xet: bool) -> None:
    model = GgufModel(layers=3, hidden=128, heads=8, kv_heads=2, vocab=300, context=8192)
    q8, q4 = gguf_bytes(model), gguf_bytes(GgufModel(**{**model.__dict__, "ggml_type": "Q4_K"}))
    make_repo(
        tmp_path / "hub",
        "o/m-GGUF",
        {"main": {"m-Q8_0.gguf": q8, "m-Q4_K_M.gguf": q4}},
        readme="# m GGUF\n",
        lfs_threshold_bytes=1024,
        xet=xet,
    )
    with HubServer(tmp_path / "hub") as hub:
        doc = list_json(hub, tmp_path, "o/m-GGUF")
        ranged = hub.requests.filter(path="*.gguf")
        assert ranged
        # headers only: every read is ranged, nothing fetched whole
        assert all(r.range is not None for r in ranged)
        # the Hub redirects (to the Xet bridge or the LFS CDN), which serves the Range
        assert {r.status for r in ranged} == {302, 206}
    assert "GGUF header" in str(doc["shape_origin"])
    variants = {v["name"]: v for v in doc["variants"]}  # type: ignore[attr-defined]
    for name, data in (("m-Q8_0.gguf", q8), ("m-Q4_K_M.gguf", q4)):
        header, _ = read_header(name, len(data), lambda s, e, d=data: d[s : e + 1])
        assert variants[name]["weights_bytes"] == header.tensor_bytes
        assert variants[name]["weights_source"] == "header"
    assert variants["m-Q4_K_M.gguf"]["weights_bytes"] < variants["m-Q8_0.gguf"]["weights_bytes"]


def test_a_25_file_repo_costs_one_range_per_file_and_nothing_the_second_time(
    tmp_path: Path,
) -> None:
    # make_repo writes a GgufModel as a real GGUF file
    files = {f"m-part{i:02d}-Q8_0.gguf": GgufModel(vocab=64 + i) for i in range(25)}
    make_repo(tmp_path / "hub", "o/many-GGUF", {"main": files}, readme="# m\n")
    with HubServer(tmp_path / "hub") as hub:
        doc = list_json(hub, tmp_path, "o/many-GGUF")
        gets = [r for r in hub.requests.filter(path="*.gguf") if r.range is not None]
        # one ranged GET per file: the Hub's redirect, then the CDN's 206
        assert len([r for r in gets if r.status == 302]) == 25
        served = [r for r in gets if r.status == 206]
        assert len(served) == 25
        assert sum(r.bytes_sent for r in served) <= 25 * FIRST_BYTES
        assert all(v["weights_source"] == "header" for v in doc["variants"])  # type: ignore[attr-defined]
        hub.requests.clear()
        list_json(hub, tmp_path, "o/many-GGUF")
        assert not hub.requests.filter(path="*.gguf")
