"""`/_testing/...` on the Hub origin: faults and request log of a server in another process.

GET    /_testing/requests   the request log, oldest first
DELETE /_testing/requests   clear it
GET    /_testing/faults     the fault table, with how often each fired
POST   /_testing/faults     add one: {"glob": "*/model.safetensors", "status": 503, "times": 2}
DELETE /_testing/faults     clear them
POST   /_testing/reset      clear both
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from quantpick.testing.faults import Fault
from quantpick.testing.replies import HubError, Reply, json_reply

if TYPE_CHECKING:
    from quantpick.testing.server import HubServer


def handle(hub: HubServer, method: str, segments: list[str], body: bytes) -> Reply:
    try:
        return _handle(hub, method, segments, body)
    except HubError as e:
        return e.reply()


def _handle(hub: HubServer, method: str, segments: list[str], body: bytes) -> Reply:
    match method, segments:
        case "GET", ["requests"]:
            return json_reply([r.as_dict() for r in hub.requests])
        case "DELETE", ["requests"]:
            hub.requests.clear()
            return json_reply({})
        case "GET", ["faults"]:
            return json_reply(hub.faults.snapshot())
        case "POST", ["faults"]:
            try:
                raw = json.loads(body or b"{}")
                glob = raw.pop("glob")
                fault = Fault.from_dict(raw)
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise HubError(400, None, f"Bad fault: {e}") from e
            hub.faults.add(glob, fault)
            return json_reply({"glob": glob, **fault.as_dict()}, status=201)
        case "DELETE", ["faults"]:
            hub.faults.clear()
            return json_reply({})
        case "POST", ["reset"]:
            hub.faults.clear()
            hub.requests.clear()
            return json_reply({})
    raise HubError(404, None, f"No control endpoint {method} /_testing/{'/'.join(segments)}")
