"""The loopback Hub's Xet storage: headers, token, CAS, xorbs — read by unmodified clients."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.hf_api import RepoFile

from quantpick.testing import DEFAULT_TOKEN, Fault, HubProcess, make_repo
from quantpick.testing.xet import CHUNK_BYTES, HEADER_BYTES, MASKED_HASH

MIB = 1 << 20
# random bytes (not sparse), over two xorbs, not a whole number of chunks
DATA = random.Random(12).randbytes(9 * MIB + 12345)
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def xet_repo(hub_root: Path) -> None:
    make_repo(hub_root, "org/m", {"main": {"model.safetensors": DATA, "config.json": "{}"}})


def raw(
    method: str, url: str, headers: dict[str, str] | None = None
) -> tuple[int, http.client.HTTPMessage, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, target, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def head(hub: HubProcess, path: str = "model.safetensors") -> http.client.HTTPMessage:
    status, headers, _ = raw("HEAD", f"{hub.endpoint}/org/m/resolve/main/{path}")
    assert status == 302
    return headers


def xet_token(hub: HubProcess, token: str | None = None) -> tuple[int, dict[str, object]]:
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    status, _, body = raw("GET", f"{hub.endpoint}/api/models/org/m/xet-read-token/main", auth)
    return status, json.loads(body)


def assert_xet_path(hub: HubProcess) -> None:
    assert hub.requests.count(origin="cas", path="/v1/reconstructions/*", status=200) >= 1
    assert hub.requests.count(origin="cas", path="/xorbs/*") >= 2
    assert hub.requests.count(origin="cdn", method="GET") == 0


# --- what the Hub says ---------------------------------------------------------------------------


def test_head_of_a_xet_file_names_hash_token_route_and_bridge(
    hub: HubProcess, xet_repo: None
) -> None:
    h = head(hub)
    commit = h["X-Repo-Commit"]
    assert len(h["X-Xet-Hash"]) == 64
    assert h["X-Linked-Size"] == str(len(DATA))
    assert h["X-Linked-Etag"] == f'"{SHA}"'
    assert h["Link"] == (
        f'<{hub.endpoint}/api/models/org/m/xet-read-token/{commit}>; rel="xet-auth", '
        f'<{hub.cas_endpoint}/v1/reconstructions/{h["X-Xet-Hash"]}>; rel="xet-reconstruction-info"'
    )
    # the bridge: whole file with Range for clients that do not speak Xet
    assert h["Location"].startswith(f"{hub.cdn_endpoint}/")
    status, got, body = raw("GET", h["Location"], {"Range": "bytes=100-199"})
    assert (status, body) == (206, DATA[100:200])
    assert got["ETag"] == f'"{SHA}"'


def test_tree_entries_carry_xet_hash_masked_on_a_gated_repo(
    hub: HubProcess, hub_root: Path
) -> None:
    make_repo(hub_root, "org/m", {"main": {"model.safetensors": DATA, "config.json": "{}"}})
    make_repo(
        hub_root, "org/g", {"main": {"model.safetensors": DATA}}, gated=True, tokens=["hf_in"]
    )
    files = {
        f.path: f.xet_hash
        for f in HfApi(endpoint=hub.endpoint, token=False).list_repo_tree("org/m")
        if isinstance(f, RepoFile)
    }
    assert files == {"config.json": None, "model.safetensors": head(hub)["X-Xet-Hash"]}
    for token, expected in ((DEFAULT_TOKEN, MASKED_HASH), ("hf_in", files["model.safetensors"])):
        (entry,) = HfApi(endpoint=hub.endpoint, token=token).list_repo_tree("org/g")
        assert isinstance(entry, RepoFile)
        assert entry.xet_hash == expected


def test_a_plain_lfs_repo_has_no_xet_at_all(hub: HubProcess, hub_root: Path) -> None:
    make_repo(hub_root, "org/m", {"main": {"model.safetensors": DATA}}, xet=False)
    h = head(hub)
    assert "X-Xet-Hash" not in h
    assert "Link" not in h
    (entry,) = HfApi(endpoint=hub.endpoint, token=False).list_repo_tree("org/m")
    assert isinstance(entry, RepoFile)
    assert entry.xet_hash is None
    assert xet_token(hub)[0] == 404


def test_xet_read_token_follows_the_repo_access_rules(hub: HubProcess, hub_root: Path) -> None:
    make_repo(
        hub_root, "org/m", {"main": {"model.safetensors": DATA}}, gated=True, tokens=["hf_in"]
    )
    status, body = xet_token(hub, "hf_in")
    assert status == 200
    assert body["casUrl"] == hub.cas_endpoint
    assert isinstance(body["exp"], int)
    assert body["accessToken"]
    assert xet_token(hub)[0] == 401
    assert xet_token(hub, DEFAULT_TOKEN)[0] == 403
    assert xet_token(hub, "hf_nobody")[0] == 401
    make_repo(
        hub_root, "org/m", {"main": {"model.safetensors": DATA}}, private=True, tokens=["hf_in"]
    )
    assert xet_token(hub, DEFAULT_TOKEN)[0] == 404
    assert xet_token(hub, "hf_in")[0] == 200


# --- the CAS -------------------------------------------------------------------------------------


def test_reconstruction_and_xorbs_rebuild_the_file_in_the_chunk_format(
    hub: HubProcess, xet_repo: None
) -> None:
    xet_hash = head(hub)["X-Xet-Hash"]
    _, body = xet_token(hub)
    auth = {"Authorization": f"Bearer {body['accessToken']}"}
    url = f"{hub.cas_endpoint}/v1/reconstructions/{xet_hash}"
    assert raw("GET", url)[0] == 401
    assert raw("GET", url.replace("/v1/", "/v2/"), auth)[0] == 404
    first = 3 * CHUNK_BYTES + 7
    status, _, text = raw("GET", url, {**auth, "Range": f"bytes={first}-{len(DATA) - 1}"})
    assert status == 200
    rec = json.loads(text)
    out = bytearray()
    for term in rec["terms"]:
        (info,) = rec["fetch_info"][term["hash"]]
        assert info["range"] == term["range"]
        span = info["url_range"]
        status, _, xorb = raw("GET", info["url"], {"Range": f"bytes={span['start']}-{span['end']}"})
        assert status == 206
        unpacked = bytearray()
        while xorb:
            version, scheme = xorb[0], xorb[4]
            compressed = int.from_bytes(xorb[1:4], "little")
            uncompressed = int.from_bytes(xorb[5:8], "little")
            assert (version, scheme, compressed) == (0, 0, uncompressed)
            unpacked += xorb[HEADER_BYTES : HEADER_BYTES + compressed]
            xorb = xorb[HEADER_BYTES + compressed :]
        assert len(unpacked) == term["unpacked_length"]
        out += unpacked
    assert len(rec["terms"]) == 2
    assert bytes(out[rec["offset_into_first_range"] :]) == DATA[first:]
    assert raw("GET", url, {**auth, "Range": f"bytes={len(DATA)}-"})[0] == 416


def test_an_expired_cas_token_is_refused(hub: HubProcess, xet_repo: None) -> None:
    hub.xet_token_ttl_s = -1
    _, body = xet_token(hub)
    url = f"{hub.cas_endpoint}/v1/reconstructions/{head(hub)['X-Xet-Hash']}"
    status, headers, _ = raw("GET", url, {"Authorization": f"Bearer {body['accessToken']}"})
    assert status == 401
    assert "expired" in headers["X-Error-Message"]


# --- unmodified clients take the Xet path --------------------------------------------------------


def test_hf_hub_download_takes_the_xet_path(
    hub: HubProcess, xet_repo: None, hf_cache: Path
) -> None:
    path = hf_hub_download(
        "org/m", "model.safetensors", endpoint=hub.endpoint, token=False, cache_dir=hf_cache
    )
    assert Path(path).read_bytes() == DATA
    assert_xet_path(hub)
    assert hub.requests.count(origin="hub", path="/api/models/org/m/xet-read-token/*") == 1


def test_snapshot_download_takes_the_xet_path(
    hub: HubProcess, xet_repo: None, hf_cache: Path, tmp_path: Path
) -> None:
    snapshot_download(
        "org/m",
        endpoint=hub.endpoint,
        token=DEFAULT_TOKEN,
        cache_dir=hf_cache,
        local_dir=tmp_path / "d",
    )
    assert (tmp_path / "d" / "model.safetensors").read_bytes() == DATA
    assert (tmp_path / "d" / "config.json").read_text() == "{}"
    assert_xet_path(hub)


def test_hf_download_cli_takes_the_xet_path(
    hub: HubProcess, xet_repo: None, tmp_path: Path
) -> None:
    hf = Path(sys.executable).with_name("hf")
    env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HOME": str(tmp_path / "home")}
    subprocess.run(
        [str(hf), "download", "org/m", "--local-dir", str(tmp_path / "d")],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert (tmp_path / "d" / "model.safetensors").read_bytes() == DATA
    assert_xet_path(hub)


def test_cas_faults_reach_hf_xet(hub: HubProcess, xet_repo: None, hf_cache: Path) -> None:
    # a dropped xorb body is retried by hf_xet; a flipped data byte comes through as wrong bytes
    hub.faults.add("/xorbs/*", Fault(drop_after_bytes=1000, times=1, origin="cas"))
    hub.faults.add("/xorbs/*/0", Fault(corrupt_at=HEADER_BYTES + 5, origin="cas"))
    path = hf_hub_download(
        "org/m", "model.safetensors", endpoint=hub.endpoint, token=False, cache_dir=hf_cache
    )
    got = Path(path).read_bytes()
    assert len(got) == len(DATA)
    assert got[5] == DATA[5] ^ 0xFF
    assert got[6:] == DATA[6:]
    assert hub.faults.fired("/xorbs/*") == 1
    assert hub.requests.count(origin="cas", path="/xorbs/*") >= 3
