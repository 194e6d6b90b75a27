"""Plain-Python references for building a population from a frame (the kernels of kernels/frame.py).

One row at a time with Python dicts, lists and ints: obviously correct, slow. Used to check the dictionary
kernels, the duplicate-key check, the string-view keys and the categorical codes of ``from_frame``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from tests.naive import twin_key


def first_appearance(values: Sequence[object]) -> tuple[list[object], list[int | None]]:
    """Distinct non-None values in order of first appearance, and each row's index among them."""
    index: dict[object, int] = {}
    codes: list[int | None] = []
    for v in values:
        if v is None:
            codes.append(None)
            continue
        if v not in index:
            index[v] = len(index)
        codes.append(index[v])
    return list(index), codes


def has_duplicates(keys: Sequence[int]) -> bool:
    seen: set[int] = set()
    for k in keys:
        if k in seen:
            return True
        seen.add(k)
    return False


def keys_and_order(ids: Sequence[str]) -> tuple[list[int], bool]:
    """Twin keys of string ids, and whether the ids strictly increase in UTF-8 byte order."""
    raw = [s.encode("utf-8") for s in ids]
    increasing = all(a < b for a, b in itertools.pairwise(raw))
    return [twin_key(s) for s in ids], increasing


def category_codes(
    values: Sequence[str | None],
    default: str,
    forced: Sequence[str] | None = None,
    normalise: bool = False,
) -> tuple[list[str], list[int]]:
    """The population's Enum of a categorical column: its categories and every row's code.

    Categories: the sorted distinct labels (plus ``default`` when a value is missing); with ``forced``,
    exactly ``forced``, and labels outside it (after strip + lower-case with ``normalise``) become
    ``"other"``. Missing values take ``default``.
    """
    present = sorted({v for v in values if v is not None})
    has_nulls = any(v is None for v in values)
    if forced is not None:
        target = list(forced)
    else:
        target = sorted(set(present) | ({default} if has_nulls else set()))
    codes = []
    for v in values:
        if v is None:
            label = default
        elif forced is not None:
            key = v.strip().lower() if normalise else v
            label = key if key in target else "other"
        else:
            label = v
        codes.append(target.index(label))
    return target, codes


def code_counts(codes: Sequence[int], n_codes: int) -> np.ndarray:
    out = np.zeros(n_codes, dtype=np.int64)
    for c in codes:
        out[int(c)] += 1
    return out
