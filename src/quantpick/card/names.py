"""What a branch, file or repository name says about the quant inside it. Pure: no I/O.

Quantizers encode their parameters in names (`6_5`, `4.0bpw_h8`, `gptq-4bit-32g-actorder_True`,
`x.Q4_K_M.gguf`, `...-00001-of-00009.gguf`); cards often say nothing else, so this is the fallback
and the cross-check for everything the card parser reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from quantpick.records import Format, Record, Role, Source, Variant, VariantKind

# llama.cpp tensor types as they appear in file names; bartowski adds _L/_XL (Q8_0 embeddings).
_GGUF_TYPE = re.compile(
    r"(?<![A-Za-z0-9])(?P<i1>i1-)?"
    # ik_llama.cpp's own types too (IQ4_KS, IQ2_KL, IQ3_K, trellis IQ2_KT) and its row-interleaved
    # repacks (IQ4_K_R4, Q8_0_R8): another type each, never the stock one they resemble
    r"(?P<q>(?:IQ\d_(?:XXS|XS|NL|S|M|KSS|KS|KL|KT|K)|TQ\d_\d|Q\d_K(?:_(?:XL|S|M|L))?"
    r"|Q\d_\d(?:_\d_\d)?)(?:_R[48])?|BF16|FP16|F16|F32|MXFP4)(?![A-Za-z0-9])",
    re.IGNORECASE,
)
# 4.25bpw, and 4_25bpw in repo and branch names where a dot is not wanted (Model-3_75bpw_exl2)
_BPW = re.compile(r"(?<![\d.])(\d{1,2})(?:[._](\d{1,3}))?\s*bpw", re.IGNORECASE)
_HEAD = re.compile(r"(?:^|[_\-])h(\d{1,2})(?=$|[_\-])", re.IGNORECASE)
_VISION = re.compile(r"[_\-]v(\d{1,2})(?=$|[_\-])", re.IGNORECASE)
# bartowski exl2 branches: 6_5 = 6.5 bpw, 4_25 = 4.25 bpw
_UNDERSCORE_BITS = re.compile(r"^(\d)_(\d{1,2})$")
_NBIT = re.compile(
    r"(?<![\d.])(\d{1,2})[-_]?bits?(?![a-z])|(?<![a-z])int(\d{1,2})(?![\d])|(?<![a-z])w(\d)a\d{1,2}\b",
    re.IGNORECASE,
)
# Mungert's mixed precision: 'bf16-q8_0' keeps output and embeddings in BF16, the rest Q8_0
_MIXED_TYPE = re.compile(r"-(?P<q>Q\d_\d|Q\d_K(?:_[SML])?)(?![A-Za-z0-9])", re.IGNORECASE)
_GROUP = re.compile(r"(?<=[-_])(-1|\d{1,4})g(?=$|[-_])", re.IGNORECASE)
_ACT_ORDER = re.compile(r"act[-_]?order[-_]?(true|false)", re.IGNORECASE)
_SPLIT_NUMBERED = re.compile(
    r"(?P<tag>-split)?-(?P<part>\d{5})-of-(?P<total>\d{5})(?=\.gguf$)", re.IGNORECASE
)
_SPLIT_LETTER = re.compile(r"(?<=\.gguf)-split-(?P<letter>[a-z])$", re.IGNORECASE)
_SPLIT_PARTOF = re.compile(r"\.part(?P<part>\d{1,5})of(?P<total>\d{1,5})$", re.IGNORECASE)

_AWQ_WORD = re.compile(r"(?<![a-z])awq", re.IGNORECASE)
_IMATRIX_WORD = re.compile(r"(?<![a-z])imatrix(?![a-z])", re.IGNORECASE)
_MODEL_FILE = re.compile(r"\.(gguf|bin)(-split-[a-z]|\.part\d+of\d+)?$", re.IGNORECASE)
_NOT_A_VARIANT = re.compile(
    r"(^|/)(readme|license|notice|measurement|config|generation_config|tokenizer[^/]*"
    r"|special_tokens_map|added_tokens|vocab|merges|imatrix[^/]*|\.gitattributes)"
    r"(\.[a-z0-9]+)?$",
    re.IGNORECASE,
)


class NameInfo(Record):
    """What a name says. `format_guessed` is true when only a naming convention points at it."""

    name: str
    format: Format | None = None
    format_guessed: bool = False
    bits: float | None = None
    head_bits: float | None = None
    vision_bits: int | None = None
    group_size: int | None = None
    act_order: bool | None = None
    # llama.cpp type as written ("Q4_K_M", "q4_K_M", "IQ3_XS"), without mradermacher's "i1-"
    quant_method: str | None = None
    imatrix: bool = False
    companion: bool = False
    split_part: int | None = None
    split_total: int | None = None
    # the name with any split-part suffix removed: the key that groups parts into one variant
    split_group: str = ""

    @property
    def says_anything(self) -> bool:
        return any(
            v is not None for v in (self.format, self.bits, self.quant_method, self.group_size)
        )

    @property
    def display_quant(self) -> str | None:
        if self.quant_method is None:
            return None
        return f"i1-{self.quant_method}" if self.imatrix else self.quant_method


def _basename(name: str) -> str:
    return name.rstrip("/").rsplit("/", 1)[-1]


# Literal words a pattern cannot match without, tested in the lower-cased name before the
# pattern runs (describe reads every row of a 100k-row table). Sound for any string when the
# word has no i, k or s: IGNORECASE matches those three with non-ASCII letters (U+0130,
# U+0131, U+212A, U+017F), and
# no other ASCII letter; words with them are only used as a filter on ASCII names.
_NUMBERED_WORD, _LETTER_WORD, _PARTOF_WORD = "-of-", ".gguf-", ".part"


def _split_info(name: str, low: str) -> tuple[str, int | None, int | None]:
    m = _SPLIT_NUMBERED.search(name) if _NUMBERED_WORD in low else None
    if m:
        group = name[: m.start()] + name[m.end() :]
        return group, int(m["part"]), int(m["total"])
    m = _SPLIT_LETTER.search(name) if _LETTER_WORD in low else None
    if m:
        return name[: m.start()], ord(m["letter"].lower()) - ord("a") + 1, None
    m = _SPLIT_PARTOF.search(name) if _PARTOF_WORD in low else None
    if m:
        return name[: m.start()], int(m["part"]), int(m["total"])
    return name, None, None


def _explicit_format(text: str, low: str) -> Format | None:
    """A format the name states: the first of exl3, exl2, gptq, awq (not inside a word), gguf,
    ggml, found case-insensitively. A plain word in the lower-cased name is that IGNORECASE
    search exactly: of all non-ASCII characters only U+0130 and U+212A lower-case to ASCII
    (i, k), and these words hold neither."""
    if "exl3" in low:
        return Format.EXL3
    if "exl2" in low:
        return Format.EXL2
    if "gptq" in low:
        return Format.GPTQ
    if "awq" in low and _AWQ_WORD.search(text):
        return Format.AWQ
    if "gguf" in low:
        return Format.GGUF
    if "ggml" in low:
        return Format.GGML
    return None


_BIN_END = re.compile(r"\.bin$", re.IGNORECASE)


def describe(name: str) -> NameInfo:
    """Read a branch, file or `owner/repo` name. Never raises; unknown names say nothing."""
    base = _basename(name.strip())
    low = base.lower()
    group, part, total = _split_info(base, low)
    group_low = low if group is base else group.lower()
    fields: dict[str, object] = {
        "name": name,
        "split_part": part,
        "split_total": total,
        "split_group": group,
        "companion": "mmproj" in low,
    }
    fmt = _explicit_format(base, low)
    # every type _GGUF_TYPE knows has a q or an f in it
    gguf = _GGUF_TYPE.search(group) if "q" in group_low or "f" in group_low else None
    if fmt is None and gguf and _BIN_END.search(group):
        fmt = Format.GGML
    guessed: Format | None = None

    bpw = _BPW.search(base) if "bpw" in low else None
    if bpw:
        fields["bits"] = float(f"{bpw[1]}.{bpw[2] or 0}")
        head = _HEAD.search(base)
        if head:
            fields["head_bits"] = float(head[1])
        vision = _VISION.search(base)
        if vision:
            fields["vision_bits"] = int(vision[1])
        guessed = Format.EXL2
    elif m := _UNDERSCORE_BITS.match(base):
        fields["bits"] = float(f"{m[1]}.{m[2]}")
        guessed = Format.EXL2
    elif gguf and fmt not in (Format.GPTQ, Format.AWQ, Format.EXL2, Format.EXL3):
        mixed = _MIXED_TYPE.match(group, gguf.end())
        fields["quant_method"] = gguf["q"] + (mixed[0] if mixed else "")
        fields["imatrix"] = gguf["i1"] is not None
        guessed = Format.GGUF
    else:
        # 'bit', 'int' and 'w' hold every match of _NBIT; only a filter on ASCII names (i)
        maybe_nbit = not low.isascii() or "bit" in low or "int" in low or "w" in low
        nbit = _NBIT.search(base) if maybe_nbit else None
        if nbit:
            fields["bits"] = float(next(g for g in nbit.groups() if g))
        group_size = _GROUP.search(base) if "g" in low else None
        if group_size:
            gs = int(group_size[1])
            fields["group_size"] = gs if gs > 0 else None
        act = _ACT_ORDER.search(base) if "act" in low else None
        if act:
            fields["act_order"] = act[1].lower() == "true"
        if fmt is None and (group_size or act):
            guessed = Format.GPTQ

    if fmt is not None:
        fields["format"] = fmt
    elif guessed is not None:
        fields["format"] = guessed
        fields["format_guessed"] = True
    return NameInfo.model_validate(fields)


def is_quant_label(text: str) -> bool:
    """A llama.cpp type on its own ('Q4_K_M', '**IQ3_XS**', 'i1-Q4_K_S'), not a file name."""
    label = text.strip().strip("*_`")
    m = _GGUF_TYPE.fullmatch(label)
    return m is not None


def quant_key(text: str) -> str | None:
    """The llama.cpp type a name or label carries, lower-cased, as a matching key (with 'i1-')."""
    info = describe(text)
    return info.display_quant.lower() if info.display_quant else None


def is_variant_file(name: str) -> bool:
    """A file that is (part of) a quant, not metadata next to it."""
    m = _MODEL_FILE.search(name)
    if not m or _NOT_A_VARIANT.search(name):
        return False
    base = _basename(name)
    # llama.cpp's importance matrix in GGUF form (`x.imatrix.gguf`): data for quantizing, no model
    if _IMATRIX_WORD.search(base) and not _GGUF_TYPE.search(base):
        return False
    # a .bin is a GGML quant only when its name says so; pytorch_model.bin is not one
    return (
        m[1].lower() == "gguf"
        or bool(re.search(r"ggml", name, re.IGNORECASE))
        or bool(_GGUF_TYPE.search(_basename(name)))
    )


def _file_variants(names: Iterable[str]) -> list[Variant]:
    groups: dict[tuple[str, str], list[tuple[NameInfo, str]]] = {}
    for raw in names:
        if not is_variant_file(raw):
            continue
        info = describe(raw)
        folder = raw.strip().rstrip("/").rpartition("/")[0]
        groups.setdefault((folder, info.split_group), []).append((info, raw))
    variants = []
    for (folder, group), members in groups.items():
        members.sort(key=lambda m: m[0].split_part or 0)
        info = describe(group)
        fmt = info.format or Format.OTHER
        is_split = len(members) > 1 or members[0][0].split_part is not None
        variants.append(
            Variant(
                name=group,
                kind=VariantKind.FILE,
                format=fmt,
                quant_method=info.display_quant,
                # a file inside a folder is listed too: its name alone is not its path
                files=tuple(raw for _, raw in members) if is_split or folder else (),
                folder=folder or None,
                role=Role.COMPANION if info.companion else Role.MODEL,
                warnings=_join_warning(group, members),
            )
        )
    return variants


def _join_warning(group: str, members: list[tuple[NameInfo, str]]) -> tuple[str, ...]:
    if any(_SPLIT_LETTER.search(raw) or _SPLIT_PARTOF.search(raw) for _, raw in members):
        return (f"{group} is uploaded in parts that must be concatenated after download",)
    return ()


def _named_variants(names: Iterable[str], kind: VariantKind) -> list[Variant]:
    listed = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    variants = []
    for raw in listed:
        # a branch may hold a `/` (`4.0bpw/h8`): all of it is the name, not a folder and a base
        info = describe(raw.replace("/", "_") if kind is VariantKind.BRANCH else raw)
        # a bare "main" says nothing; keep it only when it is all there is (the repo itself)
        if not info.says_anything and len(listed) > 1:
            continue
        variants.append(
            Variant(
                name=raw,
                kind=kind,
                format=info.format or Format.OTHER,
                bits=info.bits,
                bits_source=Source.NAME if info.bits is not None else None,
                head_bits=info.head_bits,
                group_size=info.group_size,
                act_order=info.act_order,
                quant_method=info.display_quant,
                repo=raw if kind is VariantKind.REPO else None,
                extra={"vision_bits": info.vision_bits} if info.vision_bits is not None else {},
            )
        )
    return variants


def variants_from_names(names: Iterable[str], kind: VariantKind) -> tuple[Variant, ...]:
    """Variants a repo listing implies when its card has no table: the fallback path."""
    if kind is VariantKind.FILE:
        return tuple(_file_variants(names))
    return tuple(_named_variants(names, kind))
