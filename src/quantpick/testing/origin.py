"""One origin of the loopback Hub (the Hub API or the CDN): a threaded stdlib HTTP server.

It tracks its connections so that a fault can reset one (`abort`) and `HubServer.stop()` can unblock
every handler thread before joining them.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from http.server import ThreadingHTTPServer

from quantpick.testing.faults import Origin
from quantpick.testing.handler import HubHandler
from quantpick.testing.state import HubState


class OriginServer(ThreadingHTTPServer):
    daemon_threads = True
    # server_close() joins handler threads: HubServer.stop() unblocks them first (close_connections)
    block_on_close = True

    def __init__(
        self, address: tuple[str, int], hub: HubState, origin: Origin, advertised_host: str
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.advertised_host = advertised_host
        self.hub = hub
        self.origin: Origin = origin
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._aborted: set[socket.socket] = set()
        super().__init__(address, HubHandler)

    @property
    def url(self) -> str:
        host = self.advertised_host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.server_address[1]}"

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        # tracked on the accept thread, so stop() never misses a connection whose thread is starting
        with self._lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        with self._lock:
            self._open.discard(request)
            aborted = request in self._aborted
            self._aborted.discard(request)
        if aborted:
            # no FIN before the close: the linger-0 close sends a bare RST
            self.close_request(request)
        else:
            super().shutdown_request(request)

    def abort(self, request: socket.socket) -> None:
        with self._lock:
            self._aborted.add(request)

    def close_connections(self) -> None:
        with self._lock:
            live = list(self._open)
        for conn in live:
            with contextlib.suppress(OSError):  # already gone
                conn.shutdown(socket.SHUT_RDWR)
