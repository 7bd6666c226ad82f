"""python -m quantpick.testing ROOT: serve ROOT as a Hub until SIGINT/SIGTERM.

Line 1 of stdout is the endpoint (for HF_ENDPOINT / endpoint=), line 2 the CDN endpoint.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from quantpick.testing.faults import Fault
from quantpick.testing.server import DEFAULT_TOKEN, HubServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m quantpick.testing", description=__doc__)
    parser.add_argument("root", type=Path, help="ROOT/owner/name/BRANCH/files...")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--cdn-port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--cdn-host",
        default="localhost",
        help="host name in CDN URLs; must reach --host but differ from it (default localhost)",
    )
    parser.add_argument("--cas-port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--token",
        action="append",
        default=None,
        help=f"a valid token (repeatable; default {DEFAULT_TOKEN}); .repo.json ones are too",
    )
    parser.add_argument(
        "--fault",
        nargs=2,
        action="append",
        default=[],
        metavar=("GLOB", "SPEC"),
        help="e.g. --fault '*/model.safetensors' status=503,times=2",
    )
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        parser.error(f"{args.root} is not a directory")
    try:
        faults = [(glob, Fault.parse(spec)) for glob, spec in args.fault]
    except (ValueError, TypeError) as e:
        parser.error(str(e))

    done = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    hub = HubServer(
        args.root,
        host=args.host,
        port=args.port,
        cdn_port=args.cdn_port,
        cdn_host=args.cdn_host,
        cas_port=args.cas_port,
        tokens=args.token or (DEFAULT_TOKEN,),
    )
    with hub:
        for glob, fault in faults:
            hub.faults.add(glob, fault)
        print(hub.endpoint, flush=True)
        print(hub.cdn_endpoint, flush=True)
        print(hub.cas_endpoint, flush=True)
        print(f"serving {args.root} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        done.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
