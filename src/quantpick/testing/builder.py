"""Build repositories on disk for the loopback Hub: for tests, benchmarks and the offline demo."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from quantpick.testing.gguf_files import GgufModel, gguf_bytes
from quantpick.testing.safetensors_files import SafetensorsModel, header_bytes
from quantpick.testing.store import DEFAULT_BRANCH, REFS_FILE, SETTINGS_FILE

# bytes: the content; str: text, UTF-8; int: a sparse file of that size (cheap even at many GiB);
# GgufModel: a real GGUF file with that header (testing/gguf_files.py); SafetensorsModel: a real
# safetensors header, its data a sparse hole (testing/safetensors_files.py)
Content = bytes | str | int | GgufModel | SafetensorsModel
_SAFE_DIR = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class BuiltRepo:
    repo_id: str
    path: Path
    branch_dirs: dict[str, Path]

    def branch_dir(self, branch: str = DEFAULT_BRANCH) -> Path:
        return self.branch_dirs[branch]


def make_repo(
    root: Path,
    repo_id: str,
    branches: Mapping[str, Mapping[str, Content]] | None = None,
    *,
    readme: str | None = None,
    tags: Mapping[str, str] | None = None,
    private: bool = False,
    gated: bool = False,
    tokens: Iterable[str] = (),
    lfs_threshold_bytes: int | None = None,
    served_as: Mapping[str, str] | None = None,
    mirror: Iterable[str] = (),
    xet: bool = True,
) -> BuiltRepo:
    """Write `repo_id` under `root`; `readme` goes to every branch that has no README.md of its own.

    A `main` branch is always created, as on the Hub. Branch names that are not plain directory
    names (`4.0bpw/h8`, spaces, unicode) get a directory of their own and an entry in .refs.json.
    `tags` maps a tag name to a branch name. `xet=False` serves LFS files without Xet (a plain-LFS
    mirror): no Xet headers, no xetHash, no CAS.
    """
    repo_dir = Path(root, *repo_id.split("/"))
    repo_dir.mkdir(parents=True, exist_ok=True)
    wanted = {DEFAULT_BRANCH: {}, **(branches or {})}
    dirs: dict[str, Path] = {}
    renamed: dict[str, str] = {}
    for index, (branch, files) in enumerate(wanted.items()):
        dirname = branch if _SAFE_DIR.fullmatch(branch) else f"branch-{index}"
        if dirname != branch:
            renamed[branch] = dirname
        dirs[branch] = repo_dir / dirname
        dirs[branch].mkdir(exist_ok=True)
        if readme is not None and "README.md" not in files:
            write_file(dirs[branch], "README.md", readme)
        for rel, content in files.items():
            write_file(dirs[branch], rel, content)
    refs: dict[str, dict[str, str]] = {}
    if renamed:
        refs["branches"] = renamed
    if tags:
        refs["tags"] = {tag: dirs[branch].name for tag, branch in tags.items()}
    if refs:
        (repo_dir / REFS_FILE).write_text(json.dumps(refs, ensure_ascii=False, indent=1))
    settings: dict[str, object] = {}
    if private:
        settings["private"] = True
    if gated:
        settings["gated"] = "auto"
    if tokens := list(tokens):
        settings["tokens"] = tokens
    if lfs_threshold_bytes is not None:
        settings["lfs_threshold_bytes"] = lfs_threshold_bytes
    if served_as:
        settings["served_as"] = dict(served_as)
    if mirror := sorted(mirror):
        settings["mirror"] = mirror
    if not xet:
        settings["xet"] = False
    if settings:
        (repo_dir / SETTINGS_FILE).write_text(json.dumps(settings, indent=1))
    return BuiltRepo(repo_id, repo_dir, dirs)


def write_file(branch_dir: Path, rel: str, content: Content) -> Path:
    target = branch_dir / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, int):
        with target.open("wb") as f:
            # a distinct head per path, so same-sized sparse files still differ in sha256
            f.write(rel.encode()[:content])
            f.truncate(content)
    elif isinstance(content, str):
        target.write_text(content, encoding="utf-8")
    elif isinstance(content, GgufModel):
        target.write_bytes(gguf_bytes(content))
    elif isinstance(content, SafetensorsModel):
        with target.open("wb") as f:
            f.write(header_bytes(content))
            f.truncate(f.tell() + content.data_bytes)
    else:
        target.write_bytes(content)
    return target
