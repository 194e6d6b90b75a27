"""Per-instance overrides of the ``twin_generation`` settings, validated like the configuration file."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from ..config import TwinGenerationConfig


def with_overrides(tg: TwinGenerationConfig, overrides: Mapping[str, Any]) -> TwinGenerationConfig:
    """The section with per-instance overrides, validated by the same rules as the configuration file."""
    if not overrides:
        return tg
    try:
        return TwinGenerationConfig.model_validate({**tg.model_dump(), **overrides})
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(p) for p in err["loc"])
        rule = err["msg"].removeprefix("Input should be ").removeprefix("Value error, ")
        raise ValueError(f"`{name}` must be {rule}; got {err.get('input')!r}") from None
