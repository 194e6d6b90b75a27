"""Configuration model of ``simulation.frame_encoding``: how ``TwinPopulation.from_frame`` reads big frames.

Kept out of :mod:`twinkernel.config` (which stays within the 600-line limit). None of these settings changes
a population, only how fast it is built: the codes, keys, values and warnings are the same for any value.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FrameEncodingConfig(BaseModel):
    """Work split of the kernels that encode string columns and check ``twin_id`` for duplicates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chunk_rows: int = Field(ge=256, le=1 << 24)
    """Rows per chunk of the dictionary kernels (pandas ``object`` columns), and how many leading rows of
    a string column its labels are first guessed from (a second pass covers a label seen later)."""
    dictionary_cap: int = Field(ge=1, le=65_000)
    """Most distinct values a categorical column (or one chunk of it) may hold for the kernels; a column
    with more is encoded by Polars' own ``unique`` instead."""
    keys_per_partition: int = Field(ge=1024, le=1 << 24)
    """Target number of twin keys per partition of the duplicate-id check (each partition's hash table
    should fit in a core's L2 cache)."""
    key_blocks: int = Field(ge=1, le=4096)
    """Fixed blocks (the work split over threads) of the passes over all rows: twin keys, category codes,
    the duplicate check's counting and scatter passes."""
    threaded_min_rows: int = Field(ge=0)
    """Rows from which ``from_frame`` runs its per-column NumPy and Polars steps (float and integer checks,
    building the Enum columns) on the library's numba threads; smaller frames run them in one thread."""
