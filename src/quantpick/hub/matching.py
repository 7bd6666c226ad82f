"""Which Hub files a card row means when its name is not the Hub's. Pure.

Tried only after the exact match (URL target, name, parts, folder) found nothing, and only among
files no other row claimed: case, a missing extension, an author prefix the link text dropped
(`GLM-4-Q8_0.gguf` for `THUDM_GLM-4-Q8_0.gguf`), split parts, and a quant-type-only label
(`q4_K_M`). Each rule must single out one variant's files; two candidates are no match, so an
annotation never lands on a near miss (Q4_K vs Q4_K_M, IQ4_XS vs IQ4_NL, i1- vs not, -V2).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from quantpick.card.names import describe, is_quant_label, quant_key
from quantpick.records import RemoteFile, Variant

_EXT = re.compile(r"\.(gguf|bin)$", re.IGNORECASE)


def _base(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _group(path: str) -> str:
    """The joined file a part belongs to, lower-cased: `x-00001-of-00002.gguf` -> `x.gguf`."""
    return describe(_base(path)).split_group.lower()


def _stem(name: str) -> str:
    return _EXT.sub("", name.lower())


def _prefixed(hub_stem: str, stem: str) -> bool:
    prefix, sep, rest = hub_stem.partition("_")
    return bool(sep) and rest == stem and bool(prefix) and "." not in prefix


def _rules(name: str) -> list[Callable[[RemoteFile], bool]]:
    want = name.lower()
    stem = _stem(name)
    rules: list[Callable[[RemoteFile], bool]] = [
        lambda f: _group(f.path) == want,
        lambda f: _stem(_group(f.path)) == stem,
        # bartowski's `Author_` prefix: the text drops it, the file keeps it
        lambda f: _prefixed(_stem(_group(f.path)), stem),
    ]
    if is_quant_label(name):
        key = quant_key(name)
        rules.append(lambda f: key is not None and quant_key(_group(f.path)) == key)
    return rules


def near_files(v: Variant, tree: list[RemoteFile], claimed: set[str]) -> list[RemoteFile]:
    """The files of exactly one variant that the first rule to match singles out; else none."""
    free = [f for f in tree if f.path not in claimed and _EXT.search(_group(f.path))]
    for rule in _rules(v.name):
        hits = [f for f in free if rule(f)]
        groups = {(f.path.rpartition("/")[0], _group(f.path)) for f in hits}
        if len(groups) == 1:
            return hits
        if len(groups) > 1:
            return []
    return []
