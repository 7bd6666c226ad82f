"""What the request handler and the control endpoints need of a running loopback Hub.

`HubServer` (server.py) provides it; handler.py and control.py see only this protocol, so the
server imports them and never the other way round.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from quantpick.testing.cas import CasRoutes
    from quantpick.testing.cdn import Signer
    from quantpick.testing.faults import FaultTable, Origin
    from quantpick.testing.log import RequestLog
    from quantpick.testing.routes import HubRoutes
    from quantpick.testing.store import Store


class HubState(Protocol):
    faults: FaultTable
    requests: RequestLog
    errors: list[str]
    signer: Signer
    stopping: threading.Event
    routes: HubRoutes
    cas: CasRoutes

    @property
    def endpoint(self) -> str: ...

    @property
    def store(self) -> Store: ...

    @property
    def root(self) -> Path: ...

    @root.setter
    def root(self, root: Path) -> None: ...

    @property
    def tokens(self) -> frozenset[str]: ...

    @tokens.setter
    def tokens(self, tokens: frozenset[str]) -> None: ...

    @property
    def tree_page_size(self) -> int: ...

    @tree_page_size.setter
    def tree_page_size(self, size: int) -> None: ...

    @property
    def cdn_ttl_s(self) -> float: ...

    @cdn_ttl_s.setter
    def cdn_ttl_s(self, ttl: float) -> None: ...

    @property
    def xet_token_ttl_s(self) -> float: ...

    @xet_token_ttl_s.setter
    def xet_token_ttl_s(self, ttl: float) -> None: ...

    def reset(self, root: Path | None = None) -> None: ...

    def valid_token(self, token: str) -> bool: ...


class OriginState(Protocol):
    """The origin server a handler runs in."""

    hub: HubState
    origin: Origin

    def abort(self, request: socket.socket) -> None: ...
