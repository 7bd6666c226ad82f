"""The Hub origin's endpoints, as huggingface_hub 2.4 reads them (see shared/HUB_API.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from quantpick.testing import cards
from quantpick.testing.cas import CasRoutes
from quantpick.testing.cdn import Signer
from quantpick.testing.replies import HubError, Reply, iso8601, json_reply
from quantpick.testing.store import DEFAULT_BRANCH, Entry, Repo, Snapshot, Store
from quantpick.testing.xet import MASKED_HASH, XetFile

INVALID_TOKEN = "Invalid credentials in Authorization header"
# The Hub caps a tree page at 1000 entries, 50 with expand=true
EXPAND_PAGE_SIZE = 50

Query = dict[str, list[str]]


@dataclass(frozen=True)
class Request:
    method: str
    segments: list[str]  # unquoted path segments
    query: Query
    token: str | None
    base_url: str  # scheme://host:port the client used, for Link headers

    def param(self, name: str, default: str = "") -> str:
        return self.query.get(name, [default])[-1]

    def flag(self, name: str) -> bool:
        return self.param(name).lower() in ("1", "true", "yes")


class HubRoutes:
    def __init__(self, store: Store, signer: Signer, cdn_endpoint: str, cas: CasRoutes) -> None:
        self.store = store
        self.signer = signer
        self.cdn_endpoint = cdn_endpoint
        self.cas = cas
        self.tree_page_size = 1000
        self.cdn_ttl_s = 3600.0
        self.xet_token_ttl_s = 3600.0

    def dispatch(self, req: Request) -> Reply:
        s = req.segments
        match s:
            case ["api", "agent-harnesses"]:
                return json_reply({"standardEnvVars": [], "harnesses": {}})
            case ["api", "models"]:
                return self.search(req)
            case ["api", "models", owner, name]:
                return self.info(req, f"{owner}/{name}", DEFAULT_BRANCH)
            case ["api", "models", owner, name, "revision", *rev] if rev:
                return self.info(req, f"{owner}/{name}", "/".join(rev))
            case ["api", "models", owner, name, "refs"]:
                return self.refs(req, f"{owner}/{name}")
            case ["api", "models", owner, name, "tree", *rest] if rest:
                return self.tree(req, f"{owner}/{name}", rest)
            case ["api", "models", owner, name, "xet-read-token", *rev] if rev:
                return self.xet_token(req, f"{owner}/{name}", "/".join(rev))
            case [owner, name, "resolve", *rest] if len(rest) >= 2:
                return self.resolve(req, f"{owner}/{name}", rest)
        raise HubError(
            404, None, f"Sorry, we can't find the page you are looking for: /{'/'.join(s)}"
        )

    # --- access -------------------------------------------------------------------------------

    def _repo(self, req: Request, repo_id: str) -> Repo:
        repo = self.store.repo(repo_id)
        if repo is None or (repo.settings.private and req.token not in repo.settings.tokens):
            # the Hub never says whether a repo the caller may not see exists
            raise HubError(
                401 if req.token is None else 404, "RepoNotFound", "Repository not found"
            )
        return repo

    def _check_gate(self, req: Request, repo: Repo) -> None:
        if not repo.settings.gated or req.token in repo.settings.tokens:
            return
        if req.token is None:
            msg = (
                f"Access to model {repo.repo_id} is restricted. You must have access to it"
                " and be authenticated to access it. Please log in."
            )
            raise HubError(401, "GatedRepo", msg)
        msg = f"Access to model {repo.repo_id} is restricted; you are not in the authorized list."
        raise HubError(403, "GatedRepo", msg)

    def _snapshot(self, repo: Repo, revision: str) -> Snapshot:
        snap = repo.snapshot(revision)
        if snap is None:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return snap

    def _split_rev(self, repo: Repo, rest: list[str]) -> tuple[Snapshot, str]:
        """`rest` is REV/PATH...; an unquoted `/` in REV still finds the longest matching ref."""
        for k in range(len(rest) - 1, 1, -1):
            snap = repo.snapshot("/".join(rest[:k]))
            if snap is not None:
                return snap, "/".join(rest[k:])
        return self._snapshot(repo, rest[0]), "/".join(rest[1:])

    # --- endpoints ----------------------------------------------------------------------------

    def refs(self, req: Request, repo_id: str) -> Reply:
        repo = self._repo(req, repo_id)
        out: dict[str, list[dict[str, str]]] = {"branches": [], "tags": [], "converts": []}
        for ref in repo.refs():
            prefix = "refs/heads" if ref.kind == "branch" else "refs/tags"
            commit = self._snapshot(repo, ref.name).commit
            key = "branches" if ref.kind == "branch" else "tags"
            out[key].append(
                {"name": ref.name, "ref": f"{prefix}/{ref.name}", "targetCommit": commit}
            )
        if req.flag("include_prs"):
            out["pullRequests"] = []
        return json_reply(out)

    def info(self, req: Request, repo_id: str, revision: str) -> Reply:
        repo = self._repo(req, repo_id)
        snap = self._snapshot(repo, revision)
        data = cards.card_data(snap)
        blobs = req.flag("blobs")
        body: dict[str, Any] = {
            **_summary(repo, snap, data),
            "siblings": [
                _sibling(e, blobs=blobs, blob_ids="no_blob_ids" not in repo.settings.mirror)
                for e in snap.files
            ],
            "spaces": [],
            "usedStorage": sum(e.size for e in snap.files),
        }
        return json_reply(body)

    def tree(self, req: Request, repo_id: str, rest: list[str]) -> Reply:
        repo = self._repo(req, repo_id)
        if "no_tree" in repo.settings.mirror:
            # what a mirror without the endpoint answers: no Hub error code
            raise HubError(404, None, "Not Found")
        snap, path = self._split_rev(repo, rest)
        path = path.strip("/")
        if not snap.is_dir(path):
            raise HubError(404, "EntryNotFound", f"{path} does not exist on {rest[0]}")
        recursive, expand = req.flag("recursive"), req.flag("expand")
        entries = _listing(snap, path, recursive=recursive, expand=expand)
        if repo.settings.xet:
            self._xet_hashes(req, repo, snap, entries)
        page_size = min(self.tree_page_size, EXPAND_PAGE_SIZE) if expand else self.tree_page_size
        cursor = int(req.param("cursor", "0") or 0)
        headers: dict[str, str] = {}
        if cursor + page_size < len(entries):
            query = {k: v[-1] for k, v in req.query.items()} | {"cursor": str(cursor + page_size)}
            url = f"{req.base_url}/{'/'.join(quote(s, safe='') for s in req.segments)}"
            headers["Link"] = f'<{url}?{urlencode(query)}>; rel="next"'
        return json_reply(entries[cursor : cursor + page_size], headers=headers)

    def _xet_hashes(
        self, req: Request, repo: Repo, snap: Snapshot, entries: list[dict[str, Any]]
    ) -> None:
        masked = bool(repo.settings.gated) and req.token not in repo.settings.tokens
        for item in entries:
            entry = snap.file(str(item["path"])) if "lfs" in item else None
            if entry is not None and entry.size > 0:
                xet_hash = self.cas.index.remember(XetFile(repo.repo_id, entry))
                item["xetHash"] = MASKED_HASH if masked else xet_hash

    def xet_token(self, req: Request, repo_id: str, revision: str) -> Reply:
        """A CAS read token, under the repo's own access rules (private, gated, bad token)."""
        repo = self._repo(req, repo_id)
        self._check_gate(req, repo)
        self._snapshot(repo, revision)
        if not repo.settings.xet:
            raise HubError(404, None, "Xet storage is not enabled for this repo")
        token, expires = self.cas.tokens.issue(repo_id, self.xet_token_ttl_s)
        headers = {
            "X-Xet-Cas-Url": self.cas.endpoint,
            "X-Xet-Access-Token": token,
            "X-Xet-Token-Expiration": str(expires),
        }
        body = {"accessToken": token, "exp": expires, "casUrl": self.cas.endpoint}
        return json_reply(body, headers=headers)

    def resolve(self, req: Request, repo_id: str, rest: list[str]) -> Reply:
        repo = self._repo(req, repo_id)
        self._check_gate(req, repo)
        snap, path = self._split_rev(repo, rest)
        commit = {"X-Repo-Commit": snap.commit}
        entry = snap.file(path)
        if entry is None:
            # the commit header lets the client cache the file's absence (.no_exist)
            raise HubError(404, "EntryNotFound", "Entry not found", headers=commit)
        etag = entry.oid
        if "opaque_etag" in repo.settings.mirror:
            etag = f"{entry.size:x}-{int(entry.mtime):x}"
        if entry.lfs_sha256 is None:
            headers = {**commit, "ETag": f'"{etag}"', "Content-Type": _content_type(path)}
            return Reply(200, headers, file=entry)
        location = self.signer.url(
            self.cdn_endpoint, f"{repo_id}/{snap.commit}/{path}", ttl_s=self.cdn_ttl_s
        )
        headers = {
            **commit,
            "ETag": f'"{etag}"',
            "X-Linked-Etag": f'"{entry.lfs_sha256 if etag == entry.oid else etag}"',
            "X-Linked-Size": str(entry.size),
            "Location": location,
            "Content-Type": "text/plain; charset=utf-8",
        }
        if repo.settings.xet and entry.size > 0:
            xet_hash = self.cas.index.remember(XetFile(repo_id, entry))
            auth = f"{req.base_url}/api/models/{repo_id}/xet-read-token/{snap.commit}"
            info = f"{self.cas.endpoint}/v1/reconstructions/{xet_hash}"
            headers["X-Xet-Hash"] = xet_hash
            headers["Link"] = f'<{auth}>; rel="xet-auth", <{info}>; rel="xet-reconstruction-info"'
        return Reply(302, headers, f"Found. Redirecting to {location}".encode())

    def search(self, req: Request) -> Reply:
        needle = req.param("search").lower()
        author = req.param("author")
        filters = [f for raw in req.query.get("filter", []) for f in raw.split(",") if f]
        limit = int(req.param("limit", "0") or 0)
        out: list[dict[str, Any]] = []
        for repo in self.store.repos():
            if repo.settings.private and req.token not in repo.settings.tokens:
                continue
            if author and repo.repo_id.split("/")[0] != author:
                continue
            if needle not in repo.repo_id.lower():
                continue
            snap = repo.snapshot(DEFAULT_BRANCH)
            if snap is None:
                continue
            item = _summary(repo, snap, cards.card_data(snap))
            if all(f in item["tags"] for f in filters):
                out.append(item)
            if limit and len(out) >= limit:
                break
        return json_reply(out)


def _summary(repo: Repo, snap: Snapshot, data: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "_id": snap.commit[:24],
        "id": repo.repo_id,
        "modelId": repo.repo_id,
        "author": repo.repo_id.split("/")[0],
        "sha": snap.commit,
        "lastModified": iso8601(snap.last_modified),
        "private": repo.settings.private,
        "gated": repo.settings.gated,
        "disabled": False,
        "downloads": 0,
        "likes": 0,
        "tags": cards.tags(snap, data),
    }
    if data is not None:
        body["cardData"] = data
        if "library_name" in data:
            body["library_name"] = data["library_name"]
        if "pipeline_tag" in data:
            body["pipeline_tag"] = data["pipeline_tag"]
    return body


def _sibling(e: Entry, *, blobs: bool, blob_ids: bool = True) -> dict[str, Any]:
    if not blobs:
        return {"rfilename": e.path}
    out: dict[str, Any] = {"rfilename": e.path, "size": e.size}
    if blob_ids:
        out["blobId"] = e.oid
    if e.lfs_sha256 is not None:
        out["lfs"] = {"size": e.size, "sha256": e.lfs_sha256, "pointerSize": e.pointer_size}
    return out


def _listing(snap: Snapshot, path: str, *, recursive: bool, expand: bool) -> list[dict[str, Any]]:
    prefix = f"{path}/" if path else ""

    def wanted(p: str) -> bool:
        return p.startswith(prefix) and (recursive or "/" not in p[len(prefix) :])

    items: list[dict[str, Any]] = [
        {"type": "directory", "oid": snap.dir_oid(d), "size": 0, "path": d}
        for d in snap.directories
        if wanted(d)
    ]
    for e in snap.files:
        if not wanted(e.path):
            continue
        item: dict[str, Any] = {"type": "file", "oid": e.oid, "size": e.size, "path": e.path}
        if e.lfs_sha256 is not None:
            item["lfs"] = {"oid": e.lfs_sha256, "size": e.size, "pointerSize": e.pointer_size}
        if expand:
            item["lastCommit"] = {
                "id": snap.commit,
                "title": "Upload folder using huggingface_hub",
                "date": iso8601(e.mtime),
            }
        items.append(item)
    items.sort(key=lambda i: str(i["path"]))
    return items


def _content_type(path: str) -> str:
    if path.endswith((".md", ".txt")):
        return "text/plain; charset=utf-8"
    if path.endswith(".json"):
        return "application/json; charset=utf-8"
    return "application/octet-stream"
