"""Whether a name a card writes means a Hub path, and never a near miss. Pure.

One set of rules for table rows and for mentions outside tables, tried in order: the joined
file's name, the same without extension or case, an `Author_` prefix the card dropped
(`GLM-4-Q8_0.gguf` for `THUDM_GLM-4-Q8_0.gguf`), and a quant-type-only label (`q4_K_M`). The
first rule that hits anything decides: it must single out one candidate, else nothing matches,
so Q4_K never lands on Q4_K_M, IQ4_XS on IQ4_NL, `Q4_K_M` on `i1-Q4_K_M`, or a name on its -V2.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Sequence
from functools import lru_cache
from typing import TypeVar

from quantpick.card.names import describe, is_quant_label, quant_key

K = TypeVar("K", bound=Hashable)
_EXT = re.compile(r"\.(gguf|bin)$", re.IGNORECASE)


@lru_cache(maxsize=8192)
def path_group(path: str) -> str:
    """The joined file a part belongs to, lower-cased: `x-00001-of-00002.gguf` -> `x.gguf`."""
    return describe(path.rsplit("/", 1)[-1]).split_group.lower()


@lru_cache(maxsize=8192)
def _group_key(group: str) -> str | None:
    return quant_key(group)


def is_model_path(path: str) -> bool:
    return bool(_EXT.search(path_group(path)))


def _stem(name: str) -> str:
    return _EXT.sub("", name.lower())


def _prefixed(hub_stem: str, stem: str) -> bool:
    prefix, sep, rest = hub_stem.partition("_")
    return bool(sep) and rest == stem and bool(prefix) and "." not in prefix


def name_rules(name: str) -> list[Callable[[str], bool]]:
    """Tests over a Hub path's group (path_group), strictest first."""
    # a part names its whole file: `-m x-00001-of-00002.gguf` is `x.gguf`
    want = path_group(name)
    stem = _stem(want)
    rules: list[Callable[[str], bool]] = [
        lambda g: g == want,
        lambda g: _stem(g) == stem,
        # bartowski's `Author_` prefix: the text drops it, the file keeps it
        lambda g: _prefixed(_stem(g), stem),
    ]
    if is_quant_label(name):
        key = quant_key(name)
        rules.append(lambda g: key is not None and _group_key(g) == key)
    return rules


def single_match(name: str, candidates: Sequence[tuple[K, Iterable[str]]]) -> K | None:
    """The one candidate (a key and the paths it stands for) the first rule that hits singles out;
    None when no rule hits or the first that does hits two."""
    groups = [(key, {path_group(p) for p in names}) for key, names in candidates]
    for rule in name_rules(name):
        hits = {key for key, names in groups if any(rule(g) for g in names)}
        if len(hits) == 1:
            return hits.pop()
        if hits:
            return None
    return None
