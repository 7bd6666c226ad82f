"""`verify`: re-hash a fetched directory against its manifest."""

from __future__ import annotations

from pathlib import Path

from quantpick.commands.results import FileOut, VerifyResult


def verify(local_dir: Path) -> VerifyResult:
    from quantpick.download.manifest import verify as verify_dir
    from quantpick.errors import NotFoundError

    if not local_dir.is_dir():
        raise NotFoundError(f"{local_dir} is not a directory", "give the --local-dir of a fetch")
    report = verify_dir(local_dir, full=True)
    statuses = (
        [(p, "ok") for p in report.ok]
        + [(p, "missing") for p in report.missing]
        + [(p, "wrong size") for p in report.wrong_size]
        + [(p, "wrong sha256") for p in report.wrong_hash]
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
    from quantpick.errors import IntegrityError

    if result.ok:
        return
    if result.problem:
        raise IntegrityError(
            f"cannot verify {result.local_dir}: {result.problem}",
            "only a directory written by `quantpick fetch` has a manifest",
        )
    bad = [f"{f.path} ({f.status})" for f in result.files if f.status != "ok"]
    shown = ", ".join(bad[:3]) + (" ..." if len(bad) > 3 else "")
    raise IntegrityError(f"{len(bad)} files in {result.local_dir} are damaged: {shown}")
