"""HubServer: the loopback Hub plus its CDN (a second origin), each a threaded stdlib server."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Self

from quantpick.testing.cas import CasRoutes, XetIndex
from quantpick.testing.cdn import Signer
from quantpick.testing.faults import FaultTable, Origin
from quantpick.testing.log import RequestLog
from quantpick.testing.origin import OriginServer
from quantpick.testing.routes import HubRoutes
from quantpick.testing.store import Store
from quantpick.testing.xet import XetTokens

# Valid on every repo, with access to none of the private or gated ones: "a logged-in stranger".
DEFAULT_TOKEN = "hf_quantpick_user"
_DEFAULT_PAGE_SIZE = 1000
_DEFAULT_CDN_TTL_S = 3600.0
_DEFAULT_XET_TOKEN_TTL_S = 3600.0


class HubServer:
    """A Hub on `endpoint` whose LFS downloads redirect to pre-signed URLs on `cdn_endpoint` (the
    bridge that serves whole files to non-Xet clients) and whose Xet-backed files are also offered
    through a CAS on `cas_endpoint`.

    The CDN listens on `host` too, but is advertised as `cdn_host` (default `localhost`, which must
    resolve to `host`): hf_transfer strips the Authorization header only when the host name
    changes, not the port, as it does on the real Hub's CDN redirects.

    Use as a context manager, or start()/stop(). `faults`, `requests`, `tokens`, `tree_page_size`,
    `cdn_ttl_s` and `root` may be changed while it runs; reset() restores them for the next test.
    """

    def __init__(
        self,
        root: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        cdn_port: int = 0,
        cdn_host: str = "localhost",
        cas_port: int = 0,
        tokens: Iterable[str] = (DEFAULT_TOKEN,),
    ) -> None:
        self._address = host, port, cdn_port, cas_port
        self._cdn_host = cdn_host
        self._default_tokens = frozenset(tokens)
        self.tokens = self._default_tokens
        self.faults = FaultTable()
        self.requests = RequestLog()
        # tracebacks of server bugs (500s); the pytest fixture fails the test that caused one
        self.errors: list[str] = []
        self.signer = Signer()
        self.stopping = threading.Event()
        self.cas = CasRoutes(
            XetIndex(), XetTokens(secrets.token_bytes(32)), self.signer, lambda: self.routes.store
        )
        self.routes = HubRoutes(Store(Path(root)), self.signer, cdn_endpoint="", cas=self.cas)
        self._servers: list[OriginServer] = []
        self._threads: list[threading.Thread] = []

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Self:
        if self._servers:
            raise RuntimeError("HubServer already started")
        host, port, cdn_port, cas_port = self._address
        try:
            self._servers = [OriginServer((host, port), self, "hub", host)]
            self._servers.append(OriginServer((host, cdn_port), self, "cdn", self._cdn_host))
            self._servers.append(OriginServer((host, cas_port), self, "cas", host))
        except OSError:
            for srv in self._servers:
                srv.server_close()
            self._servers = []
            raise
        self.routes.cdn_endpoint = self.cdn_endpoint
        self.cas.endpoint = self.cas_endpoint
        for srv in self._servers:
            t = threading.Thread(
                target=srv.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"loopback-hub-{srv.origin}",
                daemon=True,
            )
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self.stopping.set()
        for srv in self._servers:
            srv.shutdown()
        for srv in self._servers:
            srv.close_connections()
            srv.server_close()
        for t in self._threads:
            t.join()
        self._servers, self._threads = [], []

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def reset(self, root: Path | None = None) -> None:
        """Forget faults, requests, errors and runtime settings; optionally serve another root."""
        self.faults.clear()
        self.requests.clear()
        self.errors.clear()
        self.tokens = self._default_tokens
        self.tree_page_size = _DEFAULT_PAGE_SIZE
        self.cdn_ttl_s = _DEFAULT_CDN_TTL_S
        self.xet_token_ttl_s = _DEFAULT_XET_TOKEN_TTL_S
        if root is not None:
            self.root = root

    # --- state --------------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return self._server("hub").url

    @property
    def cdn_endpoint(self) -> str:
        return self._server("cdn").url

    @property
    def cas_endpoint(self) -> str:
        return self._server("cas").url

    def _server(self, origin: Origin) -> OriginServer:
        for srv in self._servers:
            if srv.origin == origin:
                return srv
        raise RuntimeError("HubServer is not started")

    @property
    def store(self) -> Store:
        return self.routes.store

    @property
    def root(self) -> Path:
        return self.routes.store.root

    @root.setter
    def root(self, root: Path) -> None:
        self.routes.store = Store(Path(root))

    @property
    def tree_page_size(self) -> int:
        return self.routes.tree_page_size

    @tree_page_size.setter
    def tree_page_size(self, size: int) -> None:
        self.routes.tree_page_size = size

    @property
    def cdn_ttl_s(self) -> float:
        return self.routes.cdn_ttl_s

    @cdn_ttl_s.setter
    def cdn_ttl_s(self, ttl: float) -> None:
        self.routes.cdn_ttl_s = ttl

    @property
    def xet_token_ttl_s(self) -> float:
        return self.routes.xet_token_ttl_s

    @xet_token_ttl_s.setter
    def xet_token_ttl_s(self, ttl: float) -> None:
        self.routes.xet_token_ttl_s = ttl

    @property
    def tokens(self) -> frozenset[str]:
        """Tokens valid for every repo (besides those a .repo.json grants); others get 401."""
        return self._tokens

    @tokens.setter
    def tokens(self, tokens: Iterable[str]) -> None:
        self._tokens = frozenset(tokens)

    def valid_token(self, token: str) -> bool:
        return token in self.tokens or token in self.store.repo_tokens()
