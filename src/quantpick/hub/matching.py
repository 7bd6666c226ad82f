"""Which Hub files a card row means when its name is not the Hub's. Pure.

Tried only after the exact match (URL target, name, parts, folder) found nothing, and only among
files no other row claimed, with the rules of card/matchkeys.py: each must single out one
variant's files; two candidates are no match, so an annotation never lands on a near miss.
"""

from __future__ import annotations

from quantpick.card.matchkeys import is_model_path, name_rules, path_group
from quantpick.records import RemoteFile, Variant


def near_files(v: Variant, tree: list[RemoteFile], claimed: set[str]) -> list[RemoteFile]:
    """The files of exactly one variant that the first rule to match singles out; else none."""
    free = [f for f in tree if f.path not in claimed and is_model_path(f.path)]
    for rule in name_rules(v.name):
        hits = [f for f in free if rule(path_group(f.path))]
        groups = {(f.path.rpartition("/")[0], path_group(f.path)) for f in hits}
        if len(groups) == 1:
            return hits
        if len(groups) > 1:
            return []
    return []
