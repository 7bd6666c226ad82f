"""The QuantpickError tree: each error carries the exit code scripts rely on and a hint."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    USAGE = 2
    NO_VARIANTS = 3
    NOTHING_FITS = 4
    NOT_FOUND = 5
    AUTH = 6
    NETWORK = 7
    INTEGRITY = 8
    DISK = 9
    LOCKED = 10
    NO_GPU = 11
    CANNOT_SIZE = 12
    DIR_OWNED = 13
    INTERRUPTED = 130
    TERMINATED = 143


class QuantpickError(Exception):
    exit_code: ExitCode = ExitCode.USAGE
    default_hint: str = ""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint


class UsageError(QuantpickError):
    exit_code = ExitCode.USAGE
    default_hint = "run with --help for the accepted forms"


class CardError(QuantpickError):
    """A card that cannot be read, or that lists no variant."""

    exit_code = ExitCode.NO_VARIANTS


class NothingFitsError(QuantpickError):
    exit_code = ExitCode.NOTHING_FITS


class CannotSizeError(QuantpickError):
    """No variant could be sized at all: something is missing (a config, a size), not VRAM."""

    exit_code = ExitCode.CANNOT_SIZE
    default_hint = "pass --config with the model's config.json so quantpick can estimate"


class NotFoundError(QuantpickError):
    exit_code = ExitCode.NOT_FOUND


class RepoNotFoundError(NotFoundError):
    default_hint = (
        "check the spelling of OWNER/NAME; a private repo also needs a token (--token or HF_TOKEN)"
    )


class RevisionNotFoundError(NotFoundError):
    default_hint = "run `quantpick list OWNER/NAME` to see the branches that exist"


class EntryNotFoundError(NotFoundError):
    default_hint = "run `quantpick list OWNER/NAME` to see the files that exist"


class AuthError(QuantpickError):
    exit_code = ExitCode.AUTH
    default_hint = (
        "pass --token, set HF_TOKEN, or run `hf auth login`; gated repos also need access granted"
    )


class NetworkError(QuantpickError):
    exit_code = ExitCode.NETWORK
    default_hint = "check your connection or HF_ENDPOINT; `--offline` answers from the last look-up"


class IntegrityError(QuantpickError):
    exit_code = ExitCode.INTEGRITY
    default_hint = "run `quantpick fetch` again to repair it"


class DiskSpaceError(QuantpickError):
    exit_code = ExitCode.DISK
    default_hint = "free some space or choose another --local-dir"


class LockedError(QuantpickError):
    exit_code = ExitCode.LOCKED
    default_hint = (
        "another quantpick is writing to this directory; wait for it or pick another --local-dir"
    )


class DirectoryOwnedError(QuantpickError):
    """The target directory holds another repo or variant, or a file quantpick did not write."""

    exit_code = ExitCode.DIR_OWNED
    default_hint = "choose another --local-dir, or add --replace to replace what is there"


class NoGpuError(QuantpickError):
    exit_code = ExitCode.NO_GPU
    default_hint = "pass the VRAM explicitly, e.g. --vram 24"


class InterruptedError_(QuantpickError):
    exit_code = ExitCode.INTERRUPTED
    default_hint = "run the same command again to resume"


class TerminatedError(InterruptedError_):
    """SIGTERM: the same resumable stop as Ctrl-C, with the exit code service managers expect."""

    exit_code = ExitCode.TERMINATED
