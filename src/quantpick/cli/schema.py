"""JSON Schemas of the --json envelopes, generated from the pydantic records (see docs/schema).

`python -m quantpick.cli.schema docs/schema` rewrites them; a test fails when they drift from the
code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from quantpick.commands.results import (
    Envelope,
    ErrorResult,
    FetchResult,
    ListResult,
    PickResult,
    SearchResult,
    VerifyResult,
)

ENVELOPES: dict[str, type[Envelope]] = {
    "list": ListResult,
    "pick": PickResult,
    "fetch": FetchResult,
    "verify": VerifyResult,
    "search": SearchResult,
    "error": ErrorResult,
}


def schema_text(model: type[Envelope]) -> str:
    schema = model.model_json_schema(by_alias=True, mode="serialization")
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_all(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in ENVELOPES.items():
        path = folder / f"{name}.schema.json"
        path.write_text(schema_text(model), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/schema")):
        print(p)
