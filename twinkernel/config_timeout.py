"""The ``simulation.timeout`` section: how ``simulate(timeout_s=...)`` splits the work into blocks.

Kept apart from :mod:`twinkernel.config` (which imports it) so that module stays small.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["TimeoutConfig"]


class TimeoutConfig(BaseModel):
    """Blocks and batches of a simulation with a time budget (see ``docs/performance.md``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    slots_per_block: int = Field(ge=1, le=4096)
    """Twins per block, in units of the kernels' reduction slot (``kernels.effects.SUM_BLOCK`` twins)."""
    first_batch_blocks: int = Field(ge=2, le=1_000_000)
    """Blocks always processed, whatever the clock says (at least 2: the interval needs their spread)."""
    batch_blocks: int = Field(ge=1, le=1_000_000)
    """Blocks per later batch; the deadline is checked before each batch."""
