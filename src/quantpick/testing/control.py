"""`/_testing/...` on the Hub origin: faults and request log of a server in another process.

GET    /_testing/requests   the request log, oldest first
DELETE /_testing/requests   clear it
GET    /_testing/faults     the fault table, with how often each fired
POST   /_testing/faults     add one: {"glob": "*/model.safetensors", "status": 503, "times": 2}
DELETE /_testing/faults     clear them
GET    /_testing/state      {"root", "tokens", "tree_page_size", "cdn_ttl_s", "xet_token_ttl_s",
                             "errors"}
POST   /_testing/state      set any of root, tokens, tree_page_size, cdn_ttl_s, xet_token_ttl_s
POST   /_testing/reset      HubState.reset(); body {"root": "/path"} optional
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quantpick.testing.faults import Fault
from quantpick.testing.replies import HubError, Reply, json_reply

if TYPE_CHECKING:
    from quantpick.testing.state import HubState


def handle(hub: HubState, method: str, segments: list[str], body: bytes) -> Reply:
    try:
        return _handle(hub, method, segments, body)
    except HubError as e:
        return e.reply()


def _handle(hub: HubState, method: str, segments: list[str], body: bytes) -> Reply:
    match method, segments:
        case "GET", ["requests"]:
            return json_reply([r.as_dict() for r in hub.requests])
        case "DELETE", ["requests"]:
            hub.requests.clear()
            return json_reply({})
        case "GET", ["faults"]:
            return json_reply(hub.faults.snapshot())
        case "POST", ["faults"]:
            raw = _object(body)
            try:
                glob = str(raw.pop("glob"))
                fault = Fault.from_dict(raw)
            except (ValueError, KeyError, TypeError) as e:
                raise HubError(400, None, f"Bad fault: {e}") from e
            hub.faults.add(glob, fault)
            return json_reply({"glob": glob, **fault.as_dict()}, status=201)
        case "DELETE", ["faults"]:
            hub.faults.clear()
            return json_reply({})
        case "GET", ["state"]:
            return json_reply(state(hub))
        case "POST", ["state"]:
            raw = _object(body)
            try:
                if "root" in raw:
                    hub.root = Path(raw["root"])
                if "tokens" in raw:
                    hub.tokens = frozenset(raw["tokens"])
                if "tree_page_size" in raw:
                    hub.tree_page_size = int(raw["tree_page_size"])
                if "cdn_ttl_s" in raw:
                    hub.cdn_ttl_s = float(raw["cdn_ttl_s"])
                if "xet_token_ttl_s" in raw:
                    hub.xet_token_ttl_s = float(raw["xet_token_ttl_s"])
            except (TypeError, ValueError) as e:
                raise HubError(400, None, f"Bad state: {e}") from e
            return json_reply(state(hub))
        case "POST", ["reset"]:
            root = _object(body).get("root")
            hub.reset(root=Path(root) if root else None)
            return json_reply(state(hub))
    raise HubError(404, None, f"No control endpoint {method} /_testing/{'/'.join(segments)}")


def state(hub: HubState) -> dict[str, Any]:
    return {
        "root": str(hub.root),
        "tokens": sorted(hub.tokens),
        "tree_page_size": hub.tree_page_size,
        "cdn_ttl_s": hub.cdn_ttl_s,
        "xet_token_ttl_s": hub.xet_token_ttl_s,
        "errors": list(hub.errors),
    }


def _object(body: bytes) -> dict[str, Any]:
    try:
        raw = json.loads(body or b"{}")
    except ValueError as e:
        raise HubError(400, None, f"Bad JSON: {e}") from e
    if not isinstance(raw, dict):
        raise HubError(400, None, "Expected a JSON object")
    return raw
