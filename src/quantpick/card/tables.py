"""One Variant per row of a variant table (see card_columns for which tables those are)."""

from __future__ import annotations

import gc
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from quantpick.card import values as cv
from quantpick.card.checks import flag_size_order
from quantpick.card.columns import Col, Column, classify, ident_column, refine
from quantpick.card.links import HubTarget, TargetKind, foreign_repo, hub_target, repo_format
from quantpick.card.markdown import Inline, Table, parse_inline
from quantpick.card.names import NameInfo, describe
from quantpick.records import CacheMode, Format, Role, Source, Variant, VariantKind

_NAME_TOKEN = re.compile(r"[\w][\w.\-+/]*")
_GENERIC_LINK_TEXT = {"gguf", "link", "download", "here", "hf", "file", "files", "model", "url"}
_MODEL_EXT = re.compile(r"\.(gguf|bin|safetensors)$", re.IGNORECASE)

# a missing cell (Inline is frozen: one instance serves every row)
_EMPTY = Inline("")

Extra = dict[str, str | int | float | bool | None]
# columns kept in Variant.extra: (key, or None for the header's snake_case; how to read a cell)
_EXTRA_READERS: dict[Col, tuple[str | None, Callable[[str], str | int | float | bool | None]]] = {
    Col.DAMP: ("damp_pct", cv.number),
    Col.SEQ_LEN: ("seq_len", cv.integer),
    Col.EXLLAMA: ("exllama_compatible", cv.boolean),
    Col.SPLIT: ("split", cv.boolean),
    Col.MADE_WITH: ("made_with", str),
    Col.DATASET: (None, str),
    Col.OTHER: (None, str),
}


@dataclass(frozen=True, slots=True)
class CardContext:
    """What the rest of the card says that changes how a table reads."""

    repo: str | None
    text_format: Format | None
    # the context prose assigns to VRAM figures whose column names none
    vram_context: int | None
    # prose declares the 'Size' column of an exl2 table to be VRAM at vram_context
    size_is_vram: bool


def _table_format(columns: list[Column]) -> Format | None:
    keys = " ".join(c.key for c in columns)
    roles = {c.role for c in columns}
    if "awq" in keys:
        return Format.AWQ
    if roles & {Col.ACT_ORDER, Col.DAMP} or "gptq" in keys:
        return Format.GPTQ
    if Col.HEAD_BITS in roles:
        return Format.EXL2
    return None


def _bits(text: str) -> float | None:
    value = cv.number(text)
    return value if value is not None and 0 < value <= 32 else None


def _name_token(text: str) -> str:
    m = _NAME_TOKEN.search(text)
    return m[0].rstrip(".") if m else ""


@dataclass(slots=True)
class _Identity:
    name: str
    kind: VariantKind
    info: NameInfo
    files: tuple[str, ...] = ()
    folder: str | None = None
    repo: str | None = None
    linked: bool = False


class _RowReader:
    def __init__(self, columns: list[Column], ident: int, card: CardContext) -> None:
        self.columns = columns
        self.ident = ident
        self.card = card
        self.table_format = _table_format(columns)
        self.repo_format = repo_format(card.repo)
        roles = {c.role for c in columns}
        self.has_vram_columns = bool(roles & {Col.VRAM, Col.CACHE})
        # which columns hold each role: the same for every row of the table, so looked up once
        # here (a Col key hashes in Python, Enum.__hash__: ~30 lookups a row cost 100k-row
        # tables seconds)
        by_role: dict[Col, list[int]] = {}
        for i, column in enumerate(columns):
            by_role.setdefault(column.role, []).append(i)
        self.file_columns = by_role.get(Col.FILES, [])
        self.ident_role = columns[ident].role
        self.ident_is_quant_id = self.ident_role is Col.QUANT_ID

        def first(role: Col) -> int | None:
            return by_role[role][0] if role in by_role else None

        def placed(role: Col) -> list[tuple[Column, int]]:
            return [(columns[i], i) for i in by_role.get(role, [])]

        self.bits_at, self.quant_at = first(Col.BITS), first(Col.QUANT)
        self.head_at, self.group_at, self.act_at = (
            first(Col.HEAD_BITS),
            first(Col.GROUP),
            first(Col.ACT_ORDER),
        )
        self.size_at, self.ram_at = placed(Col.SIZE)[:1], placed(Col.RAM)[:1]
        self.vram_at, self.cache_at = placed(Col.VRAM), placed(Col.CACHE)
        self.desc_at = by_role.get(Col.DESC, [])
        self.recommend_at = by_role.get(Col.RECOMMEND, [])
        # Variant.extra keys in the order they are set: by role as listed, then column order
        self.extra_at = [
            (key or columns[i].key, reader, i)
            for role, (key, reader) in _EXTRA_READERS.items()
            for i in by_role.get(role, [])
        ]

    def _file_name(self, text: str, target: HubTarget) -> str:
        """The Hub's name, not the link text: bartowski's text drops the author prefix the URL
        and the file carry (`GLM-4-32B-Q8_0.gguf` -> `THUDM_GLM-4-32B-Q8_0.gguf`)."""
        token = _name_token(text)
        if target.kind is TargetKind.FILE and _MODEL_EXT.search(target.basename):
            return target.basename
        ext = _MODEL_EXT.search(token)
        if token.lower() in _GENERIC_LINK_TEXT or not ext:
            return target.basename
        if target.kind is TargetKind.TREE and target.basename:
            # a folder of split parts named like the file it joins into
            return target.basename + ext[0]
        return token

    def identify(self, cells: list[Inline]) -> _Identity | None:
        cell = cells[self.ident]
        role = self.ident_role
        targets = [t for link in cell.links if (t := hub_target(link.href))]
        for i in self.file_columns:
            targets.extend(t for link in cells[i].links if (t := hub_target(link.href)))
        files = [t for t in targets if t.kind is TargetKind.FILE]
        # the cell's name token, read only on the paths that use it (a branch link does not)
        if len(files) > 1:
            text = _name_token(cell.text)
            name = (
                text
                if text.lower() not in _GENERIC_LINK_TEXT
                else describe(files[0].path).split_group
            )
            return _Identity(
                name,
                VariantKind.FILE,
                describe(files[0].path),
                files=tuple(t.path for t in files),
                repo=foreign_repo(files[0].repo, self.card.repo),
                linked=True,
            )
        if targets:
            t = targets[0]
            repo = foreign_repo(t.repo, self.card.repo)
            if t.kind is TargetKind.FILE:
                name = self._file_name(
                    cell.links[0].text if cell.links else _name_token(cell.text), t
                )
                return _Identity(name, VariantKind.FILE, describe(name), repo=repo, linked=True)
            if t.kind is TargetKind.TREE and t.path:
                name = self._file_name(_name_token(cell.text), t)
                return _Identity(
                    name, VariantKind.FILE, describe(name), folder=t.path, repo=repo, linked=True
                )
            if t.kind is TargetKind.TREE:
                rev = t.revision or ""
                return _Identity(rev, VariantKind.BRANCH, describe(rev), repo=repo, linked=True)
            # a link to a whole repo is no proof of a variant ("-GGUF" repos hold many): its
            # name or the row's columns must say what it is
            return _Identity(t.repo, VariantKind.REPO, describe(t.repo), repo=t.repo)
        text = _name_token(cell.text)
        if not text or len(text) > 200:
            return None
        info = describe(text)
        file_formats = (Format.GGUF, Format.GGML)
        looks_like_file = (
            bool(_MODEL_EXT.search(text))
            or info.format in file_formats
            or (self.table_format or self.card.text_format) in file_formats
        )
        kind = (
            VariantKind.FILE if role is not Col.BRANCH and looks_like_file else VariantKind.BRANCH
        )
        return _Identity(text, kind, info)

    def _format(self, ident: _Identity) -> Format:
        """The first of: the name's explicit format, the variant's repo's, the card's repo's,
        the table's, the card text's, the name's guess."""
        info = ident.info
        if info.format is not None and not info.format_guessed:
            return info.format
        return (
            repo_format(ident.repo)
            or self.repo_format
            or self.table_format
            or self.card.text_format
            or info.format
            or Format.OTHER
        )

    def read(self, row: tuple[str, ...]) -> Variant | None:
        cells = [parse_inline(raw) for raw in row[: len(self.columns)]]
        if len(cells) < len(self.columns):
            cells += [_EMPTY] * (len(self.columns) - len(cells))
        ident = self.identify(cells)
        if ident is None:
            return None
        bits_cell = cells[self.bits_at].text if self.bits_at is not None else None
        quant_cell = cells[self.quant_at].text if self.quant_at is not None else None
        if not (
            ident.linked
            or ident.info.says_anything
            or (bits_cell is not None and cv.number(bits_cell) is not None)
            or (quant_cell and describe(quant_cell).quant_method)
        ):
            return None

        fmt = self._format(ident)
        fields: dict[str, object] = {
            "name": ident.name,
            "kind": ident.kind,
            "format": fmt,
            "files": ident.files,
            "folder": ident.folder,
            "repo": ident.repo,
            "role": Role.COMPANION if ident.info.companion else Role.MODEL,
        }
        warnings: list[str] = []
        extra: Extra = {}
        if ident.info.vision_bits is not None:
            extra["vision_bits"] = ident.info.vision_bits
        self._quant_fields(ident, cells, bits_cell, fields, warnings)
        self._memory_fields(ident, fmt, cells, fields, warnings)
        self._other_fields(cells, fields, extra)
        if ident.kind is not VariantKind.BRANCH or fmt in (Format.GGUF, Format.GGML):
            quant = _name_token(quant_cell) if quant_cell else None
            if not quant and self.ident_is_quant_id:
                quant = _name_token(cells[self.ident].text)
            fields["quant_method"] = quant or ident.info.display_quant
        row_text = " | ".join([c.text for c in cells])
        marked = any(cv.is_mark(cells[i].text) for i in self.recommend_at)
        fields["recommended_by_card"] = marked or cv.is_recommended(row_text)
        fields["warnings"] = tuple(warnings)
        fields["extra"] = extra
        return Variant.model_validate(fields)

    def _quant_fields(
        self,
        ident: _Identity,
        cells: list[Inline],
        bits_cell: str | None,
        fields: dict[str, object],
        warnings: list[str],
    ) -> None:
        info = ident.info
        bits = _bits(bits_cell) if bits_cell is not None else None
        if bits is not None:
            fields["bits"], fields["bits_source"] = bits, Source.CARD
            if info.bits is not None and abs(info.bits - bits) > 1e-6:
                warnings.append(
                    f"the card's Bits cell says {bits:g} but the name {ident.name!r} says "
                    f"{info.bits:g}; keeping the card's figure"
                )
        elif info.bits is not None:
            fields["bits"], fields["bits_source"] = info.bits, Source.NAME
        head = _bits(cells[self.head_at].text) if self.head_at is not None else None
        fields["head_bits"] = head if head is not None else info.head_bits
        group_text = cells[self.group_at].text if self.group_at is not None else None
        group = cv.integer(group_text) if group_text is not None else None
        if group_text is not None and (group is not None or cv.is_unknown(group_text)):
            # "None" and -1 both mean no grouping
            fields["group_size"] = group if group is not None and group > 0 else None
            if info.group_size != fields["group_size"] and info.format is Format.GPTQ:
                warnings.append(
                    f"the card's group size {group_text!r} contradicts the name "
                    f"{ident.name!r}; keeping the card's"
                )
        else:
            fields["group_size"] = info.group_size
        act = cv.boolean(cells[self.act_at].text) if self.act_at is not None else None
        fields["act_order"] = act if act is not None else info.act_order
        if act is not None and info.act_order is not None and act != info.act_order:
            warnings.append(
                f"the card's Act Order {act} contradicts the name {ident.name!r}; "
                "keeping the card's"
            )

    def _memory_fields(
        self,
        ident: _Identity,
        fmt: Format,
        cells: list[Inline],
        fields: dict[str, object],
        warnings: list[str],
    ) -> None:
        vram: dict[int, int] = {}
        by_cache: dict[CacheMode, dict[int, int]] = {}
        size_as_vram = (
            self.card.size_is_vram
            and not self.has_vram_columns
            and ident.kind in (VariantKind.BRANCH, VariantKind.REPO)
            and fmt in (Format.EXL2, Format.EXL3)
        )
        size_context = self.card.vram_context if size_as_vram else None
        for column, i in self.size_at:
            if size_context is not None:
                figure = cv.memory_bytes(cells[i].text, column.unit or "GB")
                if figure is not None:
                    vram[size_context] = figure
            else:
                size = cv.size_bytes(cells[i].text, column.unit or "GB")
                if size is not None:
                    fields["size_bytes"], fields["size_source"] = size, Source.CARD
        for column, i in self.vram_at:
            figure = cv.memory_bytes(cells[i].text, column.unit or "GB")
            context = column.context or self.card.vram_context
            if figure is None:
                continue
            if context is None:
                fields["vram_unspecified_bytes"] = figure
            else:
                vram[context] = figure
        for column, i in self.cache_at:
            figure = cv.memory_bytes(cells[i].text, column.unit or "GB")
            context = column.context or self.card.vram_context
            if figure is None or column.cache is None:
                continue
            if context is None:
                warnings.append(f"{column.key} figure has no stated context; left out")
                continue
            by_cache.setdefault(column.cache, {})[context] = figure
        for _, i in self.ram_at:
            fields["max_ram_bytes"] = cv.memory_bytes(cells[i].text)
        fields["vram_bytes"] = vram
        fields["vram_bytes_by_cache"] = by_cache

    def _other_fields(self, cells: list[Inline], fields: dict[str, object], extra: Extra) -> None:
        descriptions = [cells[i].text for i in self.desc_at if cells[i].text]
        fields["description"] = " ".join(descriptions)
        for key, reader, i in self.extra_at:
            text = cells[i].text
            value = reader(text) if text else None
            if value is not None:
                extra.setdefault(key, value)


def table_variants(table: Table, card: CardContext) -> list[Variant]:
    """Variants of one table; empty when it is not a variant table."""
    headers = [parse_inline(h).text for h in table.header]
    columns = refine([classify(h) for h in headers], table.rows, headers)
    ident = ident_column(columns)
    if ident is None:
        return []
    reader = _RowReader(columns, ident, card)
    if len(table.rows) > 1 and all(
        any(i < len(row) and cv.is_mark(parse_inline(row[i]).text) for i in reader.recommend_at)
        for row in table.rows
    ):
        # a mark on every row singles none out ('works with llama.cpp ✅')
        reader.recommend_at = []
    variants = [v for row in table.rows if (v := reader.read(row)) is not None]
    return flag_size_order(variants)


@contextmanager
def no_cycle_collection() -> Iterator[None]:
    """Parsing a card makes no reference cycles (refcounting frees all of it), yet its
    allocations set off the cycle collector, whose full passes walk every live object: ~18 % of
    a 100k-row card, and the part that grew faster than the rows. Paused for one card; a caller
    that had it off keeps it off, and it only ever changes speed, never a result."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()
