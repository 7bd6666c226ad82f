"""Fault switches of the loopback Hub, each observed through a real client."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import hf_transfer
import httpx2
import pytest
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError

from quantpick.testing import DEFAULT_TOKEN, Fault, FaultTable, HubProcess, make_repo

MIB = 1 << 20
AUTH = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}


@pytest.fixture
def files(hub_root: Path) -> dict[str, bytes]:
    """A 3 MiB LFS file (served by the CDN origin, no Xet) and a small one (served by the Hub)."""
    content = {
        "model.safetensors": hashlib.sha256(b"seed").digest() * (3 * MIB // 32),
        "notes.txt": b"x" * 5000,
    }
    make_repo(hub_root, "org/m", {"main": content}, xet=False)
    return content


def download(hub: HubProcess, filename: str, cache: Path) -> bytes:
    path = hf_hub_download(
        "org/m", filename, endpoint=hub.endpoint, token=DEFAULT_TOKEN, cache_dir=cache
    )
    return Path(path).read_bytes()


@dataclass
class Raw:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def raw(method: str, url: str, headers: dict[str, str] | None = None, body: object = None) -> Raw:
    """One request by hand, for what the clients do not expose."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        payload = None if body is None else json.dumps(body)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, target, body=payload, headers=headers or {})
        resp = conn.getresponse()
        return Raw(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


# --- the fault table itself ---------------------------------------------------------------------


def test_fault_table_matching_and_counting() -> None:
    table = FaultTable()
    table.add("*/model.safetensors", Fault(drop_after_bytes=10, times=1, origin="cdn"))
    table.add("/api/*", Fault(status=503, method="GET"))
    req = {"method": "GET", "path": "/lfs/o/n/sha/model.safetensors"}
    assert table.claim("request", origin="cdn", **req) is None  # a body fault waits for a body
    assert table.claim("body", origin="hub", **req) is None  # wrong origin
    assert table.claim("body", method="HEAD", path=req["path"], origin="cdn") is None
    assert table.claim("body", origin="cdn", **req) == Fault(
        drop_after_bytes=10, times=1, origin="cdn"
    )
    assert table.claim("body", origin="cdn", **req) is None  # used up
    assert table.claim("request", method="HEAD", path="/api/models/o/n", origin="hub") is None
    assert table.claim("request", method="GET", path="/api/models/o/n", origin="hub") is not None
    assert table.fired("*/model.safetensors") == 1
    assert table.fired() == 2
    table.clear()
    assert table.snapshot() == []


def test_fault_specs_parse_and_reject_unknown_fields() -> None:
    assert Fault.parse("status=503,times=2") == Fault(status=503, times=2)
    assert Fault.parse("stall_s=0.5,origin=cdn") == Fault(stall_s=0.5, origin="cdn")
    assert Fault.from_dict(Fault(corrupt_at=7).as_dict()) == Fault(corrupt_at=7)
    with pytest.raises(ValueError, match="bad fault item"):
        Fault.parse("explode=1")
    with pytest.raises(ValueError, match="unknown fault fields"):
        Fault.from_dict({"explode": 1})
    with pytest.raises(ValueError, match="rate_bps"):
        Fault(rate_bps=0)
    with pytest.raises(ValueError, match="must be a number"):
        Fault.from_dict({"status": "503"})
    with pytest.raises(ValueError, match="origin"):
        Fault.parse("origin=moon")


# --- each fault through a real client ------------------------------------------------------------


def test_5xx_n_times_then_success(hub: HubProcess, files: dict[str, bytes], hf_cache: Path) -> None:
    hub.faults.add("/api/models/org/m", Fault(status=503, times=2))
    api = HfApi(endpoint=hub.endpoint, token=DEFAULT_TOKEN)
    for _ in range(2):
        with pytest.raises(HfHubHTTPError) as err:
            api.model_info("org/m")
        assert err.value.response.status_code == 503
    assert api.model_info("org/m").id == "org/m"
    assert hub.faults.fired() == 2
    # hf_hub_download retries its metadata HEAD on a 5xx
    hub.faults.add("*/notes.txt", Fault(status=502, method="HEAD", times=1))
    assert download(hub, "notes.txt", hf_cache) == files["notes.txt"]
    assert [r.status for r in hub.requests.filter(method="HEAD")] == [502, 200]


def test_hf_transfer_retries_through_5xx_and_a_dropped_connection(
    hub: HubProcess, files: dict[str, bytes], tmp_path: Path
) -> None:
    # skip=1: hf_transfer never retries its Range 0-0 probe, only the chunks
    hub.faults.add("*/model.safetensors", Fault(status=503, times=2, skip=1, origin="cdn"))
    hub.faults.add(
        "*/model.safetensors", Fault(drop_after_bytes=1000, times=1, skip=1, origin="cdn")
    )
    dest = tmp_path / "model.safetensors"
    url = f"{hub.endpoint}/org/m/resolve/main/model.safetensors"
    hf_transfer.download(url, str(dest), 4, MIB, parallel_failures=4, max_retries=5, headers=AUTH)
    assert dest.read_bytes() == files["model.safetensors"]
    assert hub.requests.count(origin="cdn", status=503) == 2
    dropped = [r for r in hub.requests.filter(origin="cdn", status=206) if r.fault]
    assert [r.bytes_sent for r in dropped] == [1000]


def test_huggingface_hub_restarts_a_truncated_body(
    hub: HubProcess, files: dict[str, bytes], hf_cache: Path
) -> None:
    hub.faults.add("*/notes.txt", Fault(truncate_bytes=100, times=1))
    assert download(hub, "notes.txt", hf_cache) == files["notes.txt"]
    gets = hub.requests.filter(method="GET", path="*/notes.txt")
    # it resumes only from whole 10 MiB chunks, so a smaller file starts over, without a Range
    assert [(r.bytes_sent, r.range) for r in gets] == [(4900, None), (5000, None)]


def test_a_reset_connection_is_not_resumed_by_huggingface_hub(
    hub: HubProcess, files: dict[str, bytes], hf_cache: Path
) -> None:
    hub.faults.add("*/model.safetensors", Fault(drop_after_bytes=MIB, times=1, origin="cdn"))
    # 2.4 retries RemoteProtocolError (a clean early close) but not ReadError (a reset)
    with pytest.raises(httpx2.ReadError):
        download(hub, "model.safetensors", hf_cache)
    assert [r.bytes_sent for r in hub.requests.filter(origin="cdn")] == [MIB]
    assert download(hub, "model.safetensors", hf_cache) == files["model.safetensors"]


def test_wrong_content_length(hub: HubProcess, files: dict[str, bytes], hf_cache: Path) -> None:
    url = f"{hub.endpoint}/org/m/resolve/main/notes.txt"
    hub.faults.add("*/notes.txt", Fault(length_delta=5, method="HEAD", times=1))
    assert raw("HEAD", url).headers["Content-Length"] == str(5000 + 5)
    assert raw("HEAD", url).headers["Content-Length"] == "5000"
    # the CDN announces 7 bytes fewer than the Hub's X-Linked-Size: the client's size check trips
    hub.faults.add("*/model.safetensors", Fault(length_delta=-7, origin="cdn"))
    with pytest.raises(OSError, match="Consistency check failed"):
        download(hub, "model.safetensors", hf_cache)


def test_corrupt_bytes_keep_the_size_but_break_sha256(
    hub: HubProcess, files: dict[str, bytes], hf_cache: Path
) -> None:
    hub.faults.add("*/model.safetensors", Fault(corrupt_at=123_456, origin="cdn"))
    got = download(hub, "model.safetensors", hf_cache)
    info = HfApi(endpoint=hub.endpoint, token=DEFAULT_TOKEN).model_info(
        "org/m", files_metadata=True
    )
    lfs = next(s.lfs for s in info.siblings or [] if s.rfilename == "model.safetensors")
    assert lfs is not None
    assert len(got) == lfs.size
    assert hashlib.sha256(got).hexdigest() != lfs.sha256
    assert got[123_456] != files["model.safetensors"][123_456]


def test_stall_delays_and_trips_client_timeouts(hub: HubProcess, files: dict[str, bytes]) -> None:
    api = HfApi(endpoint=hub.endpoint, token=DEFAULT_TOKEN)
    hub.faults.add("/api/models/org/m/refs", Fault(stall_s=0.3, times=1))
    began = time.monotonic()
    api.list_repo_refs("org/m")
    assert time.monotonic() - began >= 0.3
    hub.faults.add("/api/models/org/m", Fault(stall_s=1.0, times=1))
    with pytest.raises(httpx2.TimeoutException):
        api.model_info("org/m", timeout=0.2)


def test_slow_drip_caps_the_rate(hub: HubProcess, files: dict[str, bytes]) -> None:
    hub.faults.add("*/notes.txt", Fault(rate_bps=20_000))
    began = time.monotonic()
    resp = raw("GET", f"{hub.endpoint}/org/m/resolve/main/notes.txt")
    assert resp.status == 200
    assert time.monotonic() - began >= 0.2  # 5000 bytes at 20 kB/s: 0.25 s


# --- subprocess control -------------------------------------------------------------------------


def test_cli_fault_flag_and_control_endpoint(hub_root: Path, files: dict[str, bytes]) -> None:
    args = ["--fault", "/api/models/org/m", "status=500,times=1"]
    with HubProcess(hub_root, extra_args=args) as hub:
        api = HfApi(endpoint=hub.endpoint, token=DEFAULT_TOKEN)
        with pytest.raises(HfHubHTTPError):
            api.model_info("org/m")
        assert api.model_info("org/m").id == "org/m"
        added = raw("POST", f"{hub.endpoint}/_testing/faults", body={"glob": "*", "status": 418})
        assert added.status == 201
        log = raw("GET", f"{hub.endpoint}/_testing/requests").json
        assert [r["status"] for r in log] == [500, 200]
        with pytest.raises(HfHubHTTPError) as err:
            api.list_repo_refs("org/m")
        assert err.value.response.status_code == 418
        hub.reset()
        assert len(hub.requests) == 0
        assert hub.faults.snapshot() == []
    assert hub.returncode == 0


def test_hub_fixture_starts_clean(hub: HubProcess, hub_root: Path) -> None:
    assert hub.root == hub_root.resolve()
    assert len(hub.requests) == 0
    assert hub.faults.fired() == 0
    assert hub.tokens == {DEFAULT_TOKEN}
    assert hub.tree_page_size == 1000
    assert os.path.isdir(hub.root)


def test_a_request_begun_before_a_reset_stays_out_of_the_new_log(
    hub: HubProcess, files: dict[str, bytes]
) -> None:
    # what a killed client of the previous test still had in flight when the next one began
    hub.faults.add("/api/models/org/m", Fault(stall_s=1.0, times=1))
    answered: list[int] = []
    t = threading.Thread(
        target=lambda: answered.append(raw("GET", f"{hub.endpoint}/api/models/org/m", AUTH).status)
    )
    t.start()
    deadline = time.monotonic() + 10
    while hub.faults.fired() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    hub.reset(root=hub.root)
    t.join(timeout=30)
    assert answered == [200]
    # the server logs a request just after answering it: wait for a later request's record, by
    # which time the stalled one's would be there too
    raw("GET", f"{hub.endpoint}/api/models/org/m/revision/main", AUTH)
    deadline = time.monotonic() + 10
    while not hub.requests.filter(path="*/revision/main") and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    assert [r.path for r in hub.requests] == ["/api/models/org/m/revision/main"]
