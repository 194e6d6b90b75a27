"""Immutable, hashable containers for the boundary models (no numba, no scipy)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Generic, TypeVar, get_args

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

__all__ = ["FrozenMapping", "freeze_value"]

K = TypeVar("K")
V = TypeVar("V")


def freeze_value(value: Any) -> Any:
    """``value`` with every list, tuple, set and dict inside it made immutable (and so hashable)."""
    if isinstance(value, Mapping):
        return FrozenMapping({k: freeze_value(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze_value(v) for v in value)
    if isinstance(value, set | frozenset):
        return frozenset(freeze_value(v) for v in value)
    return value


class FrozenMapping(Mapping[K, V], Generic[K, V]):
    """A read-only mapping that hashes: equal mappings (in any insertion order) hash equal.

    Pydantic validates it from any mapping (items validated as ``dict[K, V]``) and serialises it as a
    plain dict, so JSON and ``model_dump`` look exactly as they would for a dict field.

    Examples
    --------
    >>> m = FrozenMapping({"b": 2, "a": 1})
    >>> m == {"a": 1, "b": 2}, hash(m) == hash(FrozenMapping({"a": 1, "b": 2}))
    (True, True)
    >>> m["c"] = 3
    Traceback (most recent call last):
    ...
    TypeError: 'FrozenMapping' object does not support item assignment
    """

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[K, V] | None = None, /) -> None:
        self._data: dict[K, V] = dict(data) if data is not None else {}
        self._hash: int | None = None

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __repr__(self) -> str:
        return f"FrozenMapping({self._data!r})"

    def to_dict(self) -> dict[K, V]:
        """A plain (mutable) copy."""
        return dict(self._data)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        args = get_args(source)
        key_type, value_type = args if len(args) == 2 else (Any, Any)
        dict_schema = handler.generate_schema(dict[key_type, value_type])  # type: ignore[valid-type]

        def to_plain(value: Any) -> Any:
            return dict(value) if isinstance(value, Mapping) else value

        def serialise(value: Any, nxt: core_schema.SerializerFunctionWrapHandler) -> Any:
            return nxt(dict(value))

        return core_schema.no_info_after_validator_function(
            cls,
            core_schema.no_info_before_validator_function(to_plain, dict_schema),
            serialization=core_schema.wrap_serializer_function_ser_schema(serialise, schema=dict_schema),
        )
