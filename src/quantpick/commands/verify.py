"""`verify`: re-hash a fetched directory against its manifest."""

from __future__ import annotations

from pathlib import Path

from quantpick.commands.results import FileOut, FileStatus, VerifyResult


def verify(local_dir: Path) -> VerifyResult:
    from quantpick.download.manifest import verify as verify_dir
    from quantpick.errors import NotFoundError

    if not local_dir.is_dir():
        raise NotFoundError(f"{local_dir} is not a directory", "give the --local-dir of a fetch")
    report = verify_dir(local_dir, full=True)
    statuses = (
        [(p, FileStatus.OK) for p in report.ok]
        + [(p, FileStatus.MISSING) for p in report.missing]
        + [(p, FileStatus.WRONG_SIZE) for p in report.wrong_size]
        + [(p, FileStatus.WRONG_SHA256) for p in report.wrong_hash]
    )
    sizes = {f.path: f for f in report.manifest.files} if report.manifest else {}
    return VerifyResult(
        local_dir=str(local_dir.resolve()),
        ok=report.passed,
        problem=report.problem,
        files=tuple(
            FileOut(
                path=p,
                size_bytes=sizes[p].size_bytes if p in sizes else 0,
                sha256=sizes[p].sha256 if p in sizes else None,
                status=s,
            )
            for p, s in sorted(statuses)
        ),
    )


def exit_if_corrupt(result: VerifyResult) -> None:
    from quantpick.errors import IntegrityError, NotFoundError

    if result.ok:
        return
    if result.problem and result.problem.endswith(": no manifest"):
        # nothing was fetched here: a missing thing (5), not a damaged one (8)
        raise NotFoundError(
            f"{result.local_dir} has no quantpick.json manifest: nothing to verify",
            "give the --local-dir of a `quantpick fetch`",
        )
    if result.problem:
        raise IntegrityError(
            f"cannot verify {result.local_dir}: {result.problem}",
            "only a directory written by `quantpick fetch` has a manifest",
        )
    bad = [f"{f.path} ({f.status.value})" for f in result.files if f.status is not FileStatus.OK]
    shown = ", ".join(bad[:3]) + (" ..." if len(bad) > 3 else "")
    noun = "file" if len(bad) == 1 else "files"
    raise IntegrityError(f"{len(bad)} {noun} in {result.local_dir} damaged: {shown}")
