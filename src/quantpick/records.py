"""Typed records shared by every layer. No I/O: values, validated once at the boundary."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

GIB = 1 << 30
GB = 1_000_000_000


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Format(StrEnum):
    EXL2 = "exl2"
    EXL3 = "exl3"
    GPTQ = "gptq"
    AWQ = "awq"
    GGUF = "gguf"
    GGML = "ggml"
    OTHER = "other"


class VariantKind(StrEnum):
    BRANCH = "branch"
    FILE = "file"
    REPO = "repo"


class Source(StrEnum):
    """Where a number came from, so users know what to trust."""

    CARD = "card"
    HUB = "hub"
    NAME = "name"
    ESTIMATE = "estimate"
    CONFIG = "config"
    # a GGUF file's own header, read over HTTP Range
    HEADER = "header"


class Role(StrEnum):
    MODEL = "model"
    # e.g. a llava mmproj: downloaded with a variant, never offered on its own
    COMPANION = "companion"


class CacheMode(StrEnum):
    FP16 = "fp16"
    FP8 = "fp8"
    Q8 = "q8"
    Q6 = "q6"
    Q4 = "q4"


class Runtime(StrEnum):
    EXLLAMAV3 = "exllamav3"
    EXLLAMAV2 = "exllamav2"
    TRANSFORMERS = "transformers"
    LLAMACPP = "llama.cpp"
    VLLM = "vllm"
    # a serving stack, not an engine: exl3 on exllamav3, exl2 on its legacy exllamav2 backend
    TABBYAPI = "tabbyapi"


class HubStatus(StrEnum):
    PRESENT = "present"
    # the card lists it but the Hub has no such branch/file: never offered for download
    MISSING = "missing"
    # the Hub has it but the card does not list it
    HUB_ONLY = "hub-only"
    UNCHECKED = "unchecked"


class MentionPlace(StrEnum):
    """Where a card names a variant outside its tables."""

    HEADING = "heading"
    PROSE = "prose"
    ADMONITION = "admonition"
    CODE = "code"
    # a code line that loads or fetches it (`-m x.gguf`, `--hf-file`, `-hf repo:Q8_0`)
    COMMAND = "command"


class Mention(Record):
    """A card naming a variant outside its tables: an annotation, never a variant of its own once
    the card has a table or the Hub a listing."""

    # as the card writes it: a file name, a quant type (`Q4_K_M`), a branch (`4.0bpw`)
    name: str
    place: MentionPlace
    line: int
    # the card recommends it here; `text` is the sentence that does
    recommended: bool = False
    text: str = ""
    # another repo the card names it in (`-hf other/repo:Q8_0`): never this repo's variant
    repo: str | None = None
    source: Source = Source.CARD


class SafetensorsFacts(Record):
    """What a variant's safetensors headers say (read over Range, never the weights)."""

    # elements per dtype as the headers count them; a GPTQ/AWQ layout packs several weights into
    # one I32 element, so "I32" counts packed words, not parameters
    parameters_by_dtype: dict[str, int]
    parameter_count: int
    # every tensor's bytes from its data offsets: the weights as loaded, exactly
    weights_bytes: int
    shards: int
    source: Source = Source.HEADER


class Variant(Record):
    name: str
    kind: VariantKind
    format: Format
    bits: float | None = None
    bits_source: Source | None = None
    head_bits: float | None = None
    group_size: int | None = None
    act_order: bool | None = None
    size_bytes: int | None = None
    size_source: Source | None = None
    # card VRAM figures by context length in tokens; GiB on the card ("GB" there means GiB)
    vram_bytes: dict[int, int] = Field(default_factory=dict)
    # card VRAM figures with no stated context
    vram_unspecified_bytes: int | None = None
    # figures by KV-cache mode, e.g. {"q4": {32768: ...}, "fp16": {...}}
    vram_bytes_by_cache: dict[CacheMode, dict[int, int]] = Field(default_factory=dict)
    # figures derived from a prose rule ("for 32k context add ~2 GB")
    vram_derived_bytes: dict[int, int] = Field(default_factory=dict)
    max_ram_bytes: int | None = None
    # the weights' bytes as loaded: every tensor's bytes from the GGUF headers of all its parts
    weights_bytes: int | None = None
    weights_source: Source | None = None
    # a safetensors variant's headers (branch repos: its branch; single-variant repos: main)
    safetensors: SafetensorsFacts | None = None
    quant_method: str | None = None
    recommended_by_card: bool = False
    description: str = ""
    # explicit file list (split GGUF sets); empty for a branch, which is downloaded whole
    files: tuple[str, ...] = ()
    # a GGUF set that lives in a folder of the repo (bartowski splits)
    folder: str | None = None
    # the repository the variant lives in when it is not the card's own repo
    repo: str | None = None
    role: Role = Role.MODEL
    hub_status: HubStatus = HubStatus.UNCHECKED
    # where the card names this variant outside its tables (headings, prose, commands)
    mentions: tuple[Mention, ...] = ()
    warnings: tuple[str, ...] = ()
    extra: dict[str, str | int | float | bool | None] = Field(default_factory=dict)


class ModelCard(Record):
    repo: str | None = None
    base_models: tuple[str, ...] = ()
    variants: tuple[Variant, ...] = ()
    # what context and cache the card's VRAM figures assume, as the card states it
    vram_context_tokens: int | None = None
    vram_cache_mode: CacheMode | None = None
    vram_note: str = ""
    # every mention outside tables, in card order; attached to Hub variants online
    mentions: tuple[Mention, ...] = ()
    warnings: tuple[str, ...] = ()


class ModelShape(Record):
    """What config.json says about a model: enough for the KV cache and activation terms."""

    architecture: str = ""
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    intermediate_size: int
    num_experts: int = 1
    num_experts_per_token: int = 1
    sliding_window_tokens: int | None = None
    # per-layer attention kind where a model mixes them ("full_attention" / "sliding_attention")
    layer_types: tuple[str, ...] = ()
    max_context_tokens: int | None = None
    tie_word_embeddings: bool = False
    parameter_count: int | None = None
    source: Source = Source.CONFIG


class GgufTensor(Record):
    name: str
    # llama.cpp type name ("Q4_K", "F16", ...)
    ggml_type: str
    size_bytes: int


class GgufHeader(Record):
    """What one GGUF file's header says; read without downloading its weights."""

    path: str
    architecture: str = ""
    file_type: int | None = None
    num_layers: int | None = None
    hidden_size: int | None = None
    num_attention_heads: int | None = None
    num_kv_heads: int | None = None
    head_dim: int | None = None
    intermediate_size: int | None = None
    vocab_size: int | None = None
    context_length_tokens: int | None = None
    sliding_window_tokens: int | None = None
    num_experts: int | None = None
    num_experts_per_token: int | None = None
    # this file's part of a split model (llama.cpp gguf-split), 1-based, and how many parts
    split_index: int | None = None
    split_count: int | None = None
    tensors: tuple[GgufTensor, ...] = ()
    # elements over all of this file's tensors
    parameter_count: int = 0
    # where the tensor data starts: the bytes a reader needs
    header_bytes: int = 0

    @property
    def tensor_bytes(self) -> int:
        return sum(t.size_bytes for t in self.tensors)


class Provenance(StrEnum):
    CARD = "card"
    CARD_FIT = "card-fit"
    FORMULA = "formula"


class Breakdown(Record):
    weights_bytes: int
    kv_cache_bytes: int
    runtime_buffers_bytes: int
    cuda_context_bytes: int


class Estimate(Record):
    variant: str
    context_tokens: int
    cache_mode: CacheMode
    runtime: Runtime
    vram_bytes: int
    provenance: Provenance
    breakdown: Breakdown | None = None
    weights_source: Source | None = None
    warnings: tuple[str, ...] = ()
    # llama.cpp only: whether the estimate assumes flash attention (None: the runtime has no such
    # switch)
    flash_attn: bool | None = None
    # llama.cpp layer placement (-ngl counts the output layer as one): None when every layer is on
    # the GPU(s) or the runtime does not offload by layer
    gpu_layers: int | None = None
    total_layers: int | None = None
    host_bytes: int | None = None
    per_gpu_bytes: tuple[int, ...] = ()

    @property
    def partial(self) -> bool:
        return self.gpu_layers is not None


class Budget(Record):
    gpu_vram_bytes: tuple[int, ...]
    reserve_bytes: int
    context_tokens: int
    cache_mode: CacheMode = CacheMode.FP16
    runtime: Runtime | None = None
    source: Literal["user", "nvml", "nvidia-smi", "rocm-smi", "sysctl", "env"] = "user"
    # None: what the runtime does by default (llama.cpp on CUDA: on)
    flash_attn: bool | None = None
    # system memory for the layers a partial offload leaves on the CPU; None: not offered
    ram_bytes: int | None = None

    @property
    def usable_bytes(self) -> int:
        return sum(self.gpu_vram_bytes) - self.reserve_bytes * len(self.gpu_vram_bytes)


class Candidate(Record):
    variant: Variant
    estimate: Estimate | None
    fits: bool
    margin_bytes: int | None
    max_context_tokens: int | None
    reason: str = ""
    # llama.cpp partial offload: not every layer fits the GPU(s); never a full fit. ram_fits: the
    # layers left on the CPU fit --ram (None when no --ram was given)
    partial: bool = False
    ram_fits: bool | None = None


class Recommendation(Record):
    budget: Budget
    pick: Candidate | None
    runner_up: Candidate | None
    candidates: tuple[Candidate, ...]
    reasons: tuple[str, ...] = ()


class RemoteFile(Record):
    path: str
    size_bytes: int
    # sha256 of LFS files (what the Hub states); None for small git-stored files
    sha256: str | None = None
    git_oid: str | None = None
    # the Hub stores it with Xet (its tree names a xetHash): hf_xet or the Hub's bridge fetch it
    xet: bool = False


class BranchListing(Record):
    name: str
    commit_sha: str
    files: tuple[RemoteFile, ...] = ()

    @property
    def total_bytes(self) -> int:
        return sum(f.size_bytes for f in self.files)


class RepoListing(Record):
    """What the Hub says a repo holds: the truth a card is checked against."""

    repo: str
    default_branch: str = "main"
    branches: tuple[BranchListing, ...] = ()
    # when the listing came from quantpick's on-disk cache rather than the network
    cached_at_unix: float | None = None
