"""What the Hub derives from a README's YAML front matter: `cardData` and the repo's tags."""

from __future__ import annotations

from typing import Any

# the Hub reads card metadata as YAML; so does this stand-in
import yaml

from quantpick.testing.store import Snapshot

README = "README.md"


def card_data(snapshot: Snapshot) -> dict[str, Any] | None:
    entry = snapshot.file(README)
    if entry is None or entry.size > 1 << 20:
        return None
    text = entry.abs_path.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return None
    end = next((i for i, line in enumerate(lines) if i and line.strip() == "---"), None)
    if end is None:
        return None
    try:
        data = yaml.safe_load("\n".join(lines[1:end]))
    except yaml.YAMLError:
        # the Hub keeps serving a repo whose card metadata is broken, it just has no cardData
        return None
    return data if isinstance(data, dict) else None


def tags(snapshot: Snapshot, data: dict[str, Any] | None) -> list[str]:
    """Tags as the Hub computes them, enough for `filter=base_model:quantized:ORG/NAME`."""
    data = data or {}
    out: list[str] = [str(t) for t in _as_list(data.get("tags"))]
    if library := data.get("library_name"):
        out.append(str(library))
    suffixes = {e.path.rsplit(".", 1)[-1] for e in snapshot.files if "." in e.path}
    out += [fmt for fmt in ("gguf", "safetensors") if fmt in suffixes]
    for lic in _as_list(data.get("license")):
        out.append(f"license:{lic}")
    # The Hub infers the relation when the card does not state it; for quantizers' repos, the
    # subject here, it infers "quantized".
    relation = str(data.get("base_model_relation") or "quantized")
    for base in _as_list(data.get("base_model")):
        out += [f"base_model:{base}", f"base_model:{relation}:{base}"]
    return list(dict.fromkeys(out))


def _as_list(value: object) -> list[object]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]
