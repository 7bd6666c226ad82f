"""Options and arguments more than one command takes (typer's Annotated aliases), and the help
formatting: a cli/ module, the only place besides app.py that imports typer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


class QpCommand(typer.core.TyperCommand):
    """Usage lines as hf and gh write them: REPO_ID, not {REPO_ID} and a `<str>` after it."""

    def get_help(self, ctx: typer.Context) -> str:  # type: ignore[override]
        import re

        text = super().get_help(ctx)
        text = re.sub(r"\{([A-Z_]+)\}", r"\1", text)
        return re.sub(r"^(  [A-Z_]+) <[a-z]+>", r"\1      ", text, flags=re.MULTILINE)


JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout (= --format json).")
]
FormatOpt = Annotated[
    str,
    typer.Option(
        "--format",
        metavar="auto|human|json|quiet",
        help="Output: human tables and lines (auto), one JSON document (json), or only the "
        "names/path (quiet: no stderr chatter either).",
    ),
]
WideOpt = Annotated[
    bool,
    typer.Option("--wide", help="Every table column, whatever the terminal's width."),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No warnings or progress on stderr.")]
VerboseOpt = Annotated[
    bool, typer.Option("--verbose", "-v", help="Log each Hub request to stderr (tokens redacted).")
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        metavar="TOKEN",
        help="Hub token. Default: $HF_TOKEN, then the login stored by `hf auth login`.",
        show_default=False,
    ),
]
EndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--endpoint",
        envvar="HF_ENDPOINT",
        metavar="URL",
        help="Hub or mirror URL.",
        show_default=False,
    ),
]
CacheDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        metavar="DIR",
        help="huggingface_hub's cache. Default: $HF_HUB_CACHE, else $HF_HOME/hub.",
        show_default=False,
    ),
]
OfflineOpt = Annotated[
    bool,
    typer.Option(
        "--offline", help="Answer from the last successful look-up (also $HF_HUB_OFFLINE=1)."
    ),
]
RevisionOpt = Annotated[
    str | None,
    typer.Option(
        "--revision", metavar="REV", help="Branch, tag or commit sha to read the card from."
    ),
]
CardOpt = Annotated[
    Path | None,
    typer.Option(
        "--card",
        metavar="README.md",
        help="Parse a local model card (README.md) instead of a Hub repo.",
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        metavar="CONFIG.json",
        help="The model's config.json, for the shape (layers, KV heads, ...).",
    ),
]
VramOpt = Annotated[
    str | None,
    typer.Option(
        "--vram",
        metavar="VRAM",
        envvar="QUANTPICK_VRAM",
        help="GPU memory: 24, 24GB, 24GiB (all 2^30 bytes), 24576MiB, 24,24 for two GPUs, or "
        "auto (what is free now, per NVML or nvidia-smi; --reserve still applies).",
        show_default=False,
    ),
]
CtxOpt = Annotated[
    str | None,
    typer.Option(
        "--ctx",
        metavar="CTX",
        envvar="QUANTPICK_CTX",
        help="Context length in tokens: 4k, 16K, 16384, 32k. Default: 4k.",
        show_default=False,
    ),
]
CacheOpt = Annotated[
    str,
    typer.Option(
        "--kv-cache", "--cache", metavar="MODE", help="KV-cache mode: fp16, fp8, q8, q6, q4."
    ),
]
RuntimeOpt = Annotated[
    str | None,
    typer.Option(
        "--runtime",
        metavar="RUNTIME",
        help="exllamav3, exllamav2, transformers, llama.cpp, vllm, or tabbyapi (exl3 on "
        "exllamav3, exl2 on exllamav2). Default: by format (exl3: exllamav3, exl2: "
        "exllamav2, gptq/awq: transformers, gguf: llama.cpp).",
        show_default=False,
    ),
]
FlashAttnOpt = Annotated[
    str | None,
    typer.Option(
        "--flash-attn",
        metavar="on|off",
        help="llama.cpp flash attention: on or off. Default: on (llama.cpp's -fa auto on CUDA).",
        show_default=False,
    ),
]
RamOpt = Annotated[
    str | None,
    typer.Option(
        "--ram",
        metavar="GIB",
        help="System memory for a GGUF partial offload (GiB): layers that miss the GPU run there.",
        show_default=False,
    ),
]
TimeoutOpt = Annotated[
    str | None,
    typer.Option(
        "--timeout",
        metavar="SECONDS",
        envvar="QUANTPICK_TIMEOUT",
        help="Seconds to wait for a server to connect or send anything before retrying. "
        "Default: 30.",
        show_default=False,
    ),
]
ReserveOpt = Annotated[
    str,
    typer.Option(
        "--reserve",
        metavar="GIB",
        help="VRAM kept free per GPU for the desktop and other programs (GiB).",
    ),
]

RepoArg = Annotated[
    str | None,
    typer.Argument(
        metavar="REPO_ID",
        help="OWNER/NAME, OWNER/NAME:BRANCH, OWNER/NAME@REV, hf://OWNER/NAME@REV or a Hub URL.",
        show_default=False,
    ),
]
