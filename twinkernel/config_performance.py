"""The ``performance`` section: limits that ``tests/performance`` asserts (kept apart from config.py)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Issue13Goals", "PerformanceConfig"]


class Issue13Goals(BaseModel):
    """Issue 13's goals, judged by ``benchmarks/issue13_table.py`` (speed-ups and ratios, one in seconds)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bootstrap_vs_scipy: float = Field(ge=1.0)
    bca_1m_seconds: float = Field(gt=0.0)
    simulate_over_bare: float = Field(ge=1.0)
    from_frame_over_simulate: float = Field(ge=1.0)
    sweep_speedup: float = Field(ge=1.0)


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
    issue13_goals: Issue13Goals
