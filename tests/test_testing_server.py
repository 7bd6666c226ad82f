"""The loopback Hub against the real, unmodified huggingface_hub and hf_transfer clients."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote, urlsplit

import hf_transfer
import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import RepoFile, RepoFolder

from quantpick.testing import DEFAULT_TOKEN, BuiltRepo, HubProcess, HubServer, make_repo
from quantpick.testing.blobs import git_blob_oid

MIB = 1 << 20
CARD = """---
base_model: mistralai/Mistral-7B-v0.1
license: apache-2.0
tags:
- exl2
---
# Mistral 7B exl2
"""
BRANCHES = {
    "main": {"config.json": '{"model_type": "mistral"}'},
    "4.0bpw/h8": {"model.safetensors": 3 * MIB, "sub/dir/notes.txt": "four"},
    "6_5": {"output.safetensors": b"tiny but LFS by extension"},
    "größe 8": {"weird name.bin": 5},
}


@pytest.fixture
def repo(hub_root: Path) -> BuiltRepo:
    # plain LFS (a mirror without Xet): the CDN path; test_testing_xet.py covers the Xet one
    return make_repo(
        hub_root, "org/mistral-exl2", BRANCHES, readme=CARD, tags={"v1.0": "6_5"}, xet=False
    )


def api(hub: HubProcess, token: str | bool = DEFAULT_TOKEN) -> HfApi:
    return HfApi(endpoint=hub.endpoint, token=token)


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One raw request, for the protocol details the clients do not expose."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        conn.request(
            "GET", parts.path + (f"?{parts.query}" if parts.query else ""), headers=headers or {}
        )
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


# --- refs, tree, info ---------------------------------------------------------------------------


def test_refs_lists_branches_with_any_name_tags_and_converts(
    hub: HubProcess, repo: BuiltRepo
) -> None:
    refs = api(hub).list_repo_refs("org/mistral-exl2")
    assert sorted(b.name for b in refs.branches) == ["4.0bpw/h8", "6_5", "größe 8", "main"]
    assert [(t.name, t.ref) for t in refs.tags] == [("v1.0", "refs/tags/v1.0")]
    assert refs.converts == []
    by_name = {b.name: b for b in refs.branches}
    assert by_name["4.0bpw/h8"].ref == "refs/heads/4.0bpw/h8"
    assert all(len(b.target_commit) == 40 for b in refs.branches)
    assert refs.tags[0].target_commit == by_name["6_5"].target_commit
    assert len({b.target_commit for b in refs.branches}) == 4


def test_commit_sha_is_stable_and_follows_content(hub: HubProcess, repo: BuiltRepo) -> None:
    def main_sha() -> str:
        branches = api(hub).list_repo_refs("org/mistral-exl2").branches
        return next(b.target_commit for b in branches if b.name == "main")

    first = main_sha()
    assert main_sha() == first
    (repo.branch_dir() / "config.json").write_text('{"model_type": "llama"}')
    assert main_sha() != first


def test_tree_recursive_reports_sizes_oids_and_lfs(hub: HubProcess, repo: BuiltRepo) -> None:
    entries = list(
        api(hub).list_repo_tree("org/mistral-exl2", revision="4.0bpw/h8", recursive=True)
    )
    files = {e.path: e for e in entries if isinstance(e, RepoFile)}
    dirs = {e.path for e in entries if isinstance(e, RepoFolder)}
    assert dirs == {"sub", "sub/dir"}
    assert set(files) == {"README.md", "model.safetensors", "sub/dir/notes.txt"}
    big = files["model.safetensors"]
    data = (repo.branch_dir("4.0bpw/h8") / "model.safetensors").read_bytes()
    assert big.size == 3 * MIB
    assert big.lfs is not None
    assert big.lfs.sha256 == hashlib.sha256(data).hexdigest()
    assert big.lfs.size == 3 * MIB
    notes = files["sub/dir/notes.txt"]
    assert notes.lfs is None
    assert notes.blob_id == git_blob_oid(b"four")


def test_tree_of_a_folder_not_recursive_and_expanded(hub: HubProcess, repo: BuiltRepo) -> None:
    top = list(api(hub).list_repo_tree("org/mistral-exl2", revision="4.0bpw/h8"))
    assert sorted(e.path for e in top) == ["README.md", "model.safetensors", "sub"]
    sub = list(
        api(hub).list_repo_tree("org/mistral-exl2", "sub", revision="4.0bpw/h8", expand=True)
    )
    assert [e.path for e in sub] == ["sub/dir"]
    deep = list(
        api(hub).list_repo_tree("org/mistral-exl2", "sub/dir", revision="4.0bpw/h8", expand=True)
    )
    assert isinstance(deep[0], RepoFile)
    assert deep[0].last_commit is not None
    with pytest.raises(EntryNotFoundError):
        list(api(hub).list_repo_tree("org/mistral-exl2", "nope", revision="main"))


def test_tree_paginates_with_link_headers(hub: HubProcess, hub_root: Path) -> None:
    files = {f"shard-{i:04d}.txt": str(i) for i in range(25)}
    make_repo(hub_root, "org/many", {"main": files})
    hub.tree_page_size = 10
    listed = [e.path for e in api(hub).list_repo_tree("org/many", recursive=True)]
    assert sorted(listed) == sorted(files)
    assert hub.requests.count(path="/api/models/org/many/tree/main") == 3


def test_tree_default_page_is_1000_entries(hub: HubProcess, hub_root: Path) -> None:
    make_repo(hub_root, "org/huge", {"main": {f"f{i}.txt": "" for i in range(1001)}})
    assert len(list(api(hub).list_repo_tree("org/huge", recursive=True))) == 1001
    assert hub.requests.count(path="*/tree/main") == 2


def test_model_info_at_a_branch_with_files_metadata(hub: HubProcess, repo: BuiltRepo) -> None:
    refs = api(hub).list_repo_refs("org/mistral-exl2")
    sha = next(b.target_commit for b in refs.branches if b.name == "4.0bpw/h8")
    info = api(hub).model_info("org/mistral-exl2", revision="4.0bpw/h8", files_metadata=True)
    assert info.id == "org/mistral-exl2"
    assert info.sha == sha
    assert info.private is False
    assert info.gated is False
    assert info.last_modified is not None
    assert info.card_data is not None
    assert info.card_data.base_model == "mistralai/Mistral-7B-v0.1"
    assert "base_model:quantized:mistralai/Mistral-7B-v0.1" in (info.tags or [])
    siblings = {s.rfilename: s for s in info.siblings or []}
    assert siblings["model.safetensors"].size == 3 * MIB
    assert siblings["model.safetensors"].lfs is not None
    assert siblings["README.md"].lfs is None
    assert siblings["README.md"].blob_id == git_blob_oid(CARD.encode())
    # a commit sha is a revision too
    assert api(hub).model_info("org/mistral-exl2", revision=sha).sha == sha


def test_model_info_without_revision_is_main_and_lists_siblings(
    hub: HubProcess, repo: BuiltRepo
) -> None:
    info = api(hub).model_info("org/mistral-exl2")
    assert sorted(s.rfilename for s in info.siblings or []) == ["README.md", "config.json"]


# --- downloads ----------------------------------------------------------------------------------


def test_hf_hub_download_small_and_lfs_files(
    hub: HubProcess, repo: BuiltRepo, hf_cache: Path
) -> None:
    small = hf_hub_download(
        "org/mistral-exl2",
        "config.json",
        endpoint=hub.endpoint,
        token=DEFAULT_TOKEN,
        cache_dir=hf_cache,
    )
    assert Path(small).read_text() == BRANCHES["main"]["config.json"]
    big = hf_hub_download(
        "org/mistral-exl2",
        "model.safetensors",
        revision="4.0bpw/h8",
        endpoint=hub.endpoint,
        token=DEFAULT_TOKEN,
        cache_dir=hf_cache,
    )
    assert os.path.getsize(big) == 3 * MIB
    assert Path(big).read_bytes().startswith(b"model.safetensors")
    head = hub.requests.filter(method="HEAD", path="*/model.safetensors")
    assert [(r.origin, r.status, r.authorized) for r in head] == [("hub", 302, True)]
    cdn = hub.requests.filter(origin="cdn")
    assert [(r.method, r.status, r.authorized) for r in cdn] == [("GET", 200, False)]


def test_snapshot_download_of_a_slashed_branch_resolves_through_its_commit(
    hub: HubProcess, repo: BuiltRepo, hf_cache: Path, tmp_path: Path
) -> None:
    target = tmp_path / "local"
    snapshot_download(
        "org/mistral-exl2",
        revision="4.0bpw/h8",
        endpoint=hub.endpoint,
        token=DEFAULT_TOKEN,
        cache_dir=hf_cache,
        local_dir=target,
    )
    assert (target / "sub" / "dir" / "notes.txt").read_text() == "four"
    assert (target / "model.safetensors").stat().st_size == 3 * MIB
    sha = api(hub).model_info("org/mistral-exl2", revision="4.0bpw/h8").sha
    assert hub.requests.count(path=f"*/tree/{sha}") == 1
    assert hub.requests.count(path=f"/org/mistral-exl2/resolve/{sha}/*") >= 3
    assert hub.requests.count(origin="cdn", status=200) == 1


def test_unicode_branch_and_file_names(hub: HubProcess, repo: BuiltRepo, hf_cache: Path) -> None:
    path = hf_hub_download(
        "org/mistral-exl2",
        "weird name.bin",
        revision="größe 8",
        endpoint=hub.endpoint,
        token=DEFAULT_TOKEN,
        cache_dir=hf_cache,
    )
    assert os.path.getsize(path) == 5


def test_hf_transfer_follows_the_redirect_without_leaking_the_token(
    hub: HubProcess, hub_root: Path, tmp_path: Path
) -> None:
    size = 5 * MIB + 123
    built = make_repo(hub_root, "org/big", {"main": {"model.safetensors": size}})
    url = f"{hub.endpoint}/org/big/resolve/main/model.safetensors"
    dest = tmp_path / "model.safetensors"
    hf_transfer.download(
        url,
        str(dest),
        4,
        MIB,
        parallel_failures=0,
        max_retries=0,
        headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"},
    )
    assert dest.read_bytes() == (built.branch_dir() / "model.safetensors").read_bytes()
    assert all(r.authorized for r in hub.requests.filter(origin="hub"))
    cdn = hub.requests.filter(origin="cdn")
    assert len(cdn) >= 6  # the probe plus one request per chunk
    assert not any(r.authorized for r in cdn)
    assert {r.status for r in cdn} == {206}


def test_one_gib_streams_to_parallel_clients_without_loading_it(
    hub: HubProcess, hub_root: Path, tmp_path: Path
) -> None:
    gib = 1 << 30
    built = make_repo(hub_root, "org/huge", {"main": {"model.safetensors": gib}})
    assert (built.branch_dir() / "model.safetensors").stat().st_blocks * 512 < MIB  # sparse
    (entry,) = [e for e in api(hub).list_repo_tree("org/huge") if e.path == "model.safetensors"]
    assert isinstance(entry, RepoFile)
    assert entry.lfs is not None
    dest = tmp_path / "model.safetensors"
    url = f"{hub.endpoint}/org/huge/resolve/main/model.safetensors"
    auth = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
    hf_transfer.download(
        url, str(dest), 8, 64 * MIB, parallel_failures=0, max_retries=0, headers=auth
    )
    assert dest.stat().st_size == gib
    with dest.open("rb") as f:
        assert hashlib.file_digest(f, "sha256").hexdigest() == entry.lfs.sha256
    assert hub.requests.count(origin="cdn", status=206) == 1 + 16
    status = Path(f"/proc/{hub.pid}/status")
    if status.exists():  # Linux: the server's peak memory stays far below the file's size
        peak_kib = int(
            next(ln for ln in status.read_text().splitlines() if ln.startswith("VmHWM")).split()[1]
        )
        assert peak_kib < 256 * 1024


def test_concurrent_huggingface_hub_downloads(
    hub: HubProcess, hub_root: Path, hf_cache: Path
) -> None:
    files = {f"part-{i}.gguf": (i + 1) * 100_000 for i in range(12)}
    make_repo(hub_root, "org/parts", {"main": files})

    def fetch(name: str) -> int:
        return os.path.getsize(
            hf_hub_download(
                "org/parts", name, endpoint=hub.endpoint, token=DEFAULT_TOKEN, cache_dir=hf_cache
            )
        )

    with ThreadPoolExecutor(max_workers=12) as pool:
        sizes = dict(zip(files, pool.map(fetch, files), strict=True))
    assert sizes == files


def test_range_probe_and_past_the_end_clamp(hub: HubProcess, hub_root: Path) -> None:
    make_repo(hub_root, "org/r", {"main": {"notes.txt": "0123456789"}})
    url = f"{hub.endpoint}/org/r/resolve/main/notes.txt"
    status, headers, body = get(url, {"Range": "bytes=0-0"})
    assert (status, headers["Content-Range"], body) == (206, "bytes 0-0/10", b"0")
    status, headers, body = get(url, {"Range": "bytes=8-10"})
    assert (status, headers["Content-Range"], body) == (206, "bytes 8-9/10", b"89")
    status, headers, body = get(url, {"Range": "bytes=-3"})
    assert body == b"789"
    status, headers, _ = get(url, {"Range": "bytes=10-"})
    assert (status, headers["Content-Range"]) == (416, "bytes */10")
    status, headers, body = get(url)
    assert status == 200
    assert headers["Accept-Ranges"] == "bytes"
    assert headers["ETag"] == f'"{git_blob_oid(b"0123456789")}"'
    assert len(headers["X-Repo-Commit"]) == 40


def test_quoted_revision_in_resolve_url(hub: HubProcess, repo: BuiltRepo) -> None:
    url = f"{hub.endpoint}/org/mistral-exl2/resolve/{quote('4.0bpw/h8', safe='')}/sub/dir/notes.txt"
    assert get(url)[2] == b"four"


def test_cdn_url_needs_a_valid_unexpired_signature_and_no_token(
    hub: HubProcess, repo: BuiltRepo
) -> None:
    url = f"{hub.endpoint}/org/mistral-exl2/resolve/6_5/output.safetensors"
    status, headers, _ = get(url)
    assert status == 302
    location = headers["Location"]
    assert location.startswith(hub.cdn_endpoint + "/")
    assert headers["X-Linked-Size"] == str(len(BRANCHES["6_5"]["output.safetensors"]))
    assert get(location)[2] == BRANCHES["6_5"]["output.safetensors"]
    assert get(location.replace("signature=", "signature=0"))[0] == 403
    assert get(location, {"Authorization": f"Bearer {DEFAULT_TOKEN}"})[0] == 400
    hub.cdn_ttl_s = -1
    assert get(get(url)[1]["Location"])[0] == 403


def test_agent_harnesses(hub: HubProcess) -> None:
    status, _, body = get(f"{hub.endpoint}/api/agent-harnesses")
    assert (status, json.loads(body)) == (200, {"standardEnvVars": [], "harnesses": {}})


# --- errors -------------------------------------------------------------------------------------


@pytest.fixture
def locked(hub_root: Path) -> None:
    files = {"main": {"config.json": "{}"}}
    make_repo(hub_root, "corp/private", files, private=True, tokens=["hf_member"])
    make_repo(hub_root, "corp/gated", files, gated=True, tokens=["hf_member"])


def test_private_repo(hub: HubProcess, locked: None) -> None:
    with pytest.raises(RepositoryNotFoundError) as anonymous:
        api(hub, token=False).model_info("corp/private")
    assert anonymous.value.response.status_code == 401
    with pytest.raises(RepositoryNotFoundError) as stranger:
        api(hub).list_repo_refs("corp/private")
    assert stranger.value.response.status_code == 404
    assert api(hub, "hf_member").model_info("corp/private").private is True


def test_gated_repo(hub: HubProcess, locked: None, hf_cache: Path) -> None:
    def fetch(token: str | bool) -> str:
        return hf_hub_download(
            "corp/gated", "config.json", endpoint=hub.endpoint, token=token, cache_dir=hf_cache
        )

    with pytest.raises(GatedRepoError) as anonymous:
        fetch(False)
    assert anonymous.value.response.status_code == 401
    with pytest.raises(GatedRepoError) as stranger:
        fetch(DEFAULT_TOKEN)
    assert stranger.value.response.status_code == 403
    assert Path(fetch("hf_member")).read_text() == "{}"
    # as on the Hub, the gate is on the files, not on the metadata
    assert api(hub, False).model_info("corp/gated").gated == "auto"


def test_unknown_token_is_401_not_repo_not_found(hub: HubProcess, locked: None) -> None:
    with pytest.raises(HfHubHTTPError) as err:
        api(hub, "hf_nobody").model_info("corp/private")
    assert not isinstance(err.value, RepositoryNotFoundError)
    assert err.value.response.status_code == 401


def test_missing_repo_revision_and_entry(hub: HubProcess, repo: BuiltRepo, hf_cache: Path) -> None:
    with pytest.raises(RepositoryNotFoundError):
        api(hub).list_repo_refs("org/nope")
    with pytest.raises(RevisionNotFoundError):
        api(hub).model_info("org/mistral-exl2", revision="8.0bpw")
    with pytest.raises(RevisionNotFoundError):
        api(hub).model_info("org/mistral-exl2", revision="0" * 40)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(
            "org/mistral-exl2",
            "nope.json",
            endpoint=hub.endpoint,
            token=DEFAULT_TOKEN,
            cache_dir=hf_cache,
        )


# --- search -------------------------------------------------------------------------------------


def test_search_by_base_model_author_and_text(hub: HubProcess, hub_root: Path) -> None:
    card = "---\nbase_model: meta-llama/Llama-2-7b\n---\n"
    make_repo(hub_root, "TheBloke/Llama-2-7B-GPTQ", readme=card)
    make_repo(hub_root, "bartowski/Llama-2-7B-GGUF", {"main": {"q4.gguf": 10}}, readme=card)
    make_repo(hub_root, "secret/Llama-2-7B-AWQ", readme=card, private=True)
    make_repo(hub_root, "other/Mistral-exl2", readme="---\nbase_model: mistralai/M\n---\n")
    hf = api(hub)
    found = hf.list_models(filter="base_model:quantized:meta-llama/Llama-2-7b")
    assert sorted(m.id for m in found) == ["TheBloke/Llama-2-7B-GPTQ", "bartowski/Llama-2-7B-GGUF"]
    assert [m.id for m in hf.list_models(author="bartowski")] == ["bartowski/Llama-2-7B-GGUF"]
    gguf = next(iter(hf.list_models(search="gguf", cardData=True)))
    assert "gguf" in (gguf.tags or [])
    assert gguf.card_data is not None
    assert len(list(hf.list_models(search="llama", limit=1))) == 1


# --- servers ------------------------------------------------------------------------------------


def test_in_process_server_serves_huggingface_hub(hub_root: Path, hf_cache: Path) -> None:
    make_repo(hub_root, "org/m", {"main": {"model.gguf": 2 * MIB}}, xet=False)
    with HubServer(hub_root) as server:
        path = hf_hub_download(
            "org/m", "model.gguf", endpoint=server.endpoint, token=DEFAULT_TOKEN, cache_dir=hf_cache
        )
        assert os.path.getsize(path) == 2 * MIB
        assert server.requests.count(origin="cdn") == 1
        assert not server.errors


def test_cli_prints_endpoint_and_stops_cleanly_on_sigterm(hub_root: Path) -> None:
    make_repo(hub_root, "org/m", {"main": {"a.txt": "A"}})
    proc = subprocess.Popen(
        [sys.executable, "-m", "quantpick.testing", str(hub_root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        endpoint = proc.stdout.readline().strip()
        assert endpoint.startswith("http://127.0.0.1:")
        assert proc.stdout.readline().startswith("http://localhost:")
        assert get(f"{endpoint}/org/m/resolve/main/a.txt")[2] == b"A"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
