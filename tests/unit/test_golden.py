"""Golden values per KERNEL_VERSION: a kernel whose output changes must come with a version bump.

``KERNEL_VERSION`` is part of every cache key, so a stale version could serve results computed by older
kernels from a shared cache (Redis). Each kernel runs here on small inputs built by plain arithmetic (no
library RNG, no configuration), and a few checksums of its output are compared with the values stored in
``tests/unit/golden_kernels.json`` under the current ``KERNEL_VERSION``.

When a kernel's output changes on purpose: bump ``KERNEL_VERSION`` in ``twinkernel/kernels/__init__.py``,
then record the new values with ``TWINKERNEL_UPDATE_GOLDEN=1 pytest tests/unit/test_golden.py`` (the entries
of older versions are kept).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from tests.conftest import GOLDEN_RTOL, kernel_pass
from twinkernel.kernels import KERNEL_VERSION, _rng
from twinkernel.kernels import effects as K
from twinkernel.kernels.stats import combine_columns, combine_grouped

GOLDEN_PATH = Path(__file__).with_name("golden_kernels.json")
CHANGED = "kernel output changed: bump KERNEL_VERSION and update the golden values"
N = K.SUM_BLOCK + 905  # two sum slots, the second partly filled
SEED = 20260


def _inputs(n: int = N) -> dict[str, np.ndarray]:
    i = np.arange(n, dtype=np.int64)
    return {
        "decile": ((i * 7) % 13 - 1).astype(np.int16),  # includes 0, 11 and 12: clamped
        "engagement": ((i * 37) % 103) / 100.0,  # up to 1.02: clamped
        "adoption": ((i * 5) % 7).astype(np.uint8),  # code 6 is unrecognised
        "tier": ((i * 3) % 7).astype(np.int8),  # 0 and 6 are clamped
        "peer": ((i * 11) % 101) / 100.0,
        "propensity": ((i * 13) % 97) / 96.0,
        "baseline": 0.3 + ((i * 17) % 89) / 1000.0,
        "twin_key": _twin_keys([f"twin-{k}" for k in range(n)]),
        "codes": ((i * 19) % 5).astype(np.uint8),
        "weights": np.cos(i * 0.37),
    }


def _twin_keys(ids: list[str]) -> np.ndarray:
    encoded = [s.encode("utf-8") for s in ids]
    data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    out = np.empty(len(ids), dtype=np.uint64)
    _rng.twin_keys_from_strings(data, offsets, out)
    return out


def _params(peer_threshold: float, use_tier: bool) -> np.ndarray:
    p = np.zeros(K.N_PARAMS)
    p[K.P_BASE] = 0.08
    p[K.P_NOISE_SD] = 0.03
    p[K.P_INTENSITY] = 1.5
    p[K.P_DURATION] = 1.1
    p[K.P_CHANNEL] = 0.9
    p[K.P_PEER_THRESHOLD] = peer_threshold
    p[K.P_USE_TIER] = 1.0 if use_tier else 0.0
    p[K.P_CAP] = 0.25
    p[K.P_DECILE_INTERCEPT], p[K.P_DECILE_SLOPE] = 1.2, 0.04
    p[K.P_DECILE_LOW], p[K.P_DECILE_HIGH] = 1.0, 10.0
    p[K.P_ENGAGEMENT_INTERCEPT], p[K.P_ENGAGEMENT_SLOPE] = 0.8, 0.4
    p[K.P_PROPENSITY_INTERCEPT], p[K.P_PROPENSITY_SLOPE] = 0.8, 0.4
    return p


ADOPTION = np.array([0.6, 0.8, 1.0, 1.2, 1.4, 1.0])
TIER = np.array([1.0, 1.5, 1.2, 1.0, 0.8, 0.6])


def _checksums(x: np.ndarray, weights: np.ndarray) -> list[float]:
    x = np.asarray(x, dtype=np.float64).ravel()
    w = np.resize(weights, x.size)
    return [float(x.sum()), float((x * x).sum()), float((x * w).sum()), *map(float, x[:6])]


def compute_golden() -> dict[str, Any]:
    """Every kernel's checksums on the fixed inputs (what the JSON file stores per KERNEL_VERSION)."""
    d = _inputs()
    out: dict[str, Any] = {}

    # The RNG: raw 64-bit draws, uniforms, normals by index and by twin key.
    key = _rng.key_for(np.uint64(SEED), 1)
    out["rng_u64"] = [str(int(_rng.random_u64(key, np.uint64(k)))) for k in (0, 1, 2, 2**40, 2**63)]
    normals = np.empty(64)
    _rng.fill_standard_normal(SEED, 1, 3, normals)
    out["rng_normal"] = _checksums(normals, d["weights"])
    uniforms = np.empty(64)
    _rng.fill_uniform(SEED, 16, 0, uniforms)
    out["rng_uniform"] = _checksums(uniforms, d["weights"])

    # The twin-key hash: strings (ASCII, empty, multi-byte) and integers.
    out["twin_key_str"] = [str(int(k)) for k in _twin_keys(["hcp-000001", "", "é", "日本語", "twin-0"])]
    ints = np.array([0, 1, 2**63 - 1, -1, -(2**63)], dtype=np.int64).view(np.uint64)
    int_keys = np.empty(ints.shape[0], dtype=np.uint64)
    _rng.twin_keys_from_ints(ints, int_keys)
    out["twin_key_int"] = [str(int(k)) for k in int_keys]

    # The fused pass, with and without the peer gate and the tier multiplier, selection and groups.
    index = np.arange(N - 1, -1, -3, dtype=np.int64)  # every third twin, reversed
    columns = SimpleNamespace(**d)
    for name, params in (("plain", _params(-1.0, False)), ("peer_tier", _params(0.5, True))):
        for label, idx in (("all", None), ("index", index)):
            effects, counts, sums, groups = kernel_pass(
                columns,
                params,
                ADOPTION,
                TIER,
                codes=(d["codes"],),
                offsets=np.array([0, 5], dtype=np.int64),
                index=idx,
                seed=SEED,
                chunk=1024,
                with_groups=True,
                effect_shift=0.1,
                baseline_shift=0.3,
            )
            out[f"pass_{name}_{label}_effects"] = _checksums(effects, d["weights"])
            out[f"pass_{name}_{label}_counts"] = counts.sum(axis=0).tolist()
            out[f"pass_{name}_{label}_sums"] = combine_columns(sums).tolist()
            gn, gmean, gvar = combine_grouped(groups, 0.1)
            out[f"pass_{name}_{label}_groups"] = [*map(int, gn), *map(float, gmean), *map(float, gvar)]

    # The traced variant on a reversed selection.
    idx = np.arange(199, -1, -1, dtype=np.int64)
    effects = np.empty(200)
    trace = np.empty((200, K.N_MODIFIERS))
    counts = K.individual_effects_traced(
        d["decile"],
        d["engagement"],
        d["adoption"],
        d["tier"],
        d["peer"],
        d["propensity"],
        d["twin_key"],
        idx,
        True,
        _params(0.5, True),
        ADOPTION,
        TIER,
        np.uint64(SEED),
        64,
        effects,
        trace,
    )
    out["traced_effects"] = _checksums(effects, d["weights"])
    out["traced_trace"] = _checksums(trace, d["weights"])
    out["traced_counts"] = counts.sum(axis=0).tolist()

    # Stats combine on fixed partial sums.
    partials = np.stack([np.cos(np.arange(6) * (c + 1.0)) for c in range(7)])
    out["combine_columns"] = combine_columns(partials).tolist()
    grouped = np.abs(np.sin(np.arange(7 * 4 * 3, dtype=np.float64))).reshape(7, 4, 3) * 5.0
    gn, gmean, gvar = combine_grouped(np.round(grouped), 0.25)
    out["combine_grouped"] = [*map(int, gn), *map(float, gmean), *map(float, gvar)]

    # The public bootstrap on a tiny fixed input, every resampling scheme.
    from twinkernel.bootstrap import bootstrap_ci

    values = 0.05 + 0.02 * np.sin(np.arange(60) * 0.9)
    groups_in = np.arange(60) % 3
    for resampling in ("multinomial", "poisson", "blb"):
        r = bootstrap_ci(
            values, groups_in, n_resamples=200, method="percentile", resampling=resampling, seed=11
        )
        low, high = _interval(r)
        out[f"bootstrap_{resampling}"] = [float(low), float(high), float(r.standard_error)]
    return out


def _interval(result: Any) -> tuple[float, float]:
    """The overall interval of a BootstrapResult (``ci_lower``/``ci_upper`` or ``confidence_interval``)."""
    if hasattr(result, "ci_lower"):
        return result.ci_lower, result.ci_upper
    return result.confidence_interval


def _load() -> dict[str, Any]:
    return json.loads(GOLDEN_PATH.read_text()) if GOLDEN_PATH.exists() else {}


def _compare(got: dict[str, Any], stored: dict[str, Any]) -> int:
    """Assert every stored output of this KERNEL_VERSION is reproduced; return how many were compared."""
    assert KERNEL_VERSION in stored, (
        f"no golden values for KERNEL_VERSION {KERNEL_VERSION!r}: record them with "
        "TWINKERNEL_UPDATE_GOLDEN=1 pytest tests/unit/test_golden.py"
    )
    expected = stored[KERNEL_VERSION]
    assert sorted(got) == sorted(expected), f"{CHANGED} (the set of checked outputs differs)"
    for name, want in expected.items():
        have = got[name]
        assert len(have) == len(want), f"{CHANGED}: {name}"
        for a, b in zip(have, want, strict=True):
            if isinstance(b, str) or (isinstance(b, int) and not isinstance(b, bool)):
                assert a == b, f"{CHANGED}: {name} gives {a!r}, stored {b!r}"
            else:
                assert a == pytest.approx(b, rel=GOLDEN_RTOL, abs=GOLDEN_RTOL * 1e-3), (
                    f"{CHANGED}: {name} gives {a!r}, stored {b!r}"
                )
    return len(expected)


@pytest.fixture(scope="module")
def golden_now() -> dict[str, Any]:
    return compute_golden()


def test_golden_values_match_kernel_version(golden_now):
    stored = _load()
    if os.environ.get("TWINKERNEL_UPDATE_GOLDEN") == "1":
        stored[KERNEL_VERSION] = golden_now
        GOLDEN_PATH.write_text(json.dumps(stored, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    compared = _compare(golden_now, stored)
    assert compared == len(golden_now) >= 10  # every kernel output was checked, none silently skipped


def test_golden_check_catches_a_change(golden_now):
    """The comparison is not vacuous: a value off by 1e-9 relative, or a different hash, fails with the
    bump message."""
    stored = _load()
    for name, position, change in (("traced_effects", 0, 1.0 + 1e-9), ("twin_key_str", 0, None)):
        tampered = json.loads(json.dumps(stored))
        values = tampered[KERNEL_VERSION][name]
        values[position] = str(int(values[position]) ^ 1) if change is None else values[position] * change
        with pytest.raises(AssertionError, match="bump KERNEL_VERSION and update the golden values"):
            _compare(golden_now, tampered)
