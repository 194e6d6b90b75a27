"""The ``performance`` section: limits that ``tests/performance`` asserts (kept apart from config.py)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["PerformanceConfig"]


class PerformanceConfig(BaseModel):
    """Limits asserted by ``tests/performance``: speed as same-run ratios, memory in MB (10**6 bytes)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_speedup_10k: float = Field(ge=1.0, le=1e6)
    min_speedup_50k: float = Field(ge=1.0, le=1e6)
    min_generation_speedup: float = Field(ge=1.0, le=1e7)
    scaling_sizes: tuple[int, ...] = Field(min_length=2)
    """Population sizes of the scaling test (one thread, interleaved rounds)."""
    min_scaling_slope: float = Field(gt=0.0, le=2.0)
    max_scaling_slope: float = Field(gt=0.0, le=2.0)
    max_debug_overhead_fraction: float = Field(gt=0.0, le=10.0)
    simulate_traced_peak_mb_10k: float = Field(gt=0.0)
    simulate_traced_peak_mb_50k: float = Field(gt=0.0)
    max_simulate_bytes_per_twin: float = Field(ge=8.0, le=1e4)
    linear_fit_tolerance: float = Field(gt=0.0, lt=1.0)
    leak_tolerance_kib: float = Field(ge=0.0)
    gc_retained_fraction: float = Field(ge=0.0, lt=1.0)
    peak_rss_mb_10m: float = Field(gt=0.0)
    simulate_rss_overhead_mb_10m: float = Field(gt=0.0)
    min_sweep_speedup: float = Field(ge=1.0, le=1e6)
