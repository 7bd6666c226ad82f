"""A loopback Hugging Face Hub: a real HTTP server speaking the Hub's API, for tests and demos.

See README.md in this package for the on-disk layout, the fault switches and the pytest fixtures.
"""

from quantpick.testing.builder import BuiltRepo, make_repo, write_file
from quantpick.testing.faults import Fault, FaultTable
from quantpick.testing.log import RequestLog, RequestRecord
from quantpick.testing.process import HubProcess
from quantpick.testing.server import DEFAULT_TOKEN, HubServer
from quantpick.testing.silent import SilentServer

__all__ = [
    "DEFAULT_TOKEN",
    "BuiltRepo",
    "Fault",
    "FaultTable",
    "HubProcess",
    "HubServer",
    "RequestLog",
    "RequestRecord",
    "SilentServer",
    "make_repo",
    "write_file",
]
