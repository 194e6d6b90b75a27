"""simulate() from many Python threads at once: every call returns what it returns alone."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numba
import pytest

from twinkernel import InterventionConfig, PopulationFilter

TYPES = (
    "email_campaign",
    "call_frequency_increase",
    "speaker_program_invitation",
    "sample_distribution",
    "peer_influence_activation",
    "digital_engagement",
    "email_campaign",
    "digital_engagement",
    "speaker_program_invitation",
    "call_frequency_increase",
)


def test_threading_layer_is_safe_for_concurrent_callers(make_engine):
    make_engine(200).simulate(InterventionConfig(intervention_type="email_campaign"), seed=1)
    assert numba.threading_layer() in ("omp", "tbb")


@pytest.mark.parametrize("same_request", [True, False])
def test_ten_threads_match_sequential_runs(make_engine, same_request):
    engine = make_engine(60_000, seed=12)
    requests = []
    for i, itype in enumerate(TYPES):
        cfg = InterventionConfig(intervention_type="email_campaign" if same_request else itype)
        pf = PopulationFilter() if same_request else PopulationFilter(deciles=list(range(1, 2 + i % 10)))
        requests.append((cfg, pf, 1000 if same_request else 1000 + i))
    sequential = [engine.simulate(c, f, seed=s) for c, f, s in requests]
    with ThreadPoolExecutor(max_workers=10) as pool:
        for _ in range(3):
            concurrent = list(pool.map(lambda r: engine.simulate(r[0], r[1], seed=r[2]), requests))
            for alone, together in zip(sequential, concurrent, strict=True):
                assert together.simulated_ate == alone.simulated_ate
                assert together.simulated_ci_lower == alone.simulated_ci_lower
                assert together.simulated_ci_upper == alone.simulated_ci_upper
                assert together.effect_heterogeneity == alone.effect_heterogeneity
                assert together.twin_count == alone.twin_count


def test_warns_when_numba_already_runs_on_workqueue():
    """A process that initialised numba's unsafe layer before importing twinkernel is told so."""
    import subprocess
    import sys

    script = (
        "import warnings, numba, numpy as np\n"
        "numba.config.THREADING_LAYER = 'workqueue'\n"
        "@numba.njit(parallel=True)\n"
        "def f(a):\n"
        "    s = 0.0\n"
        "    for i in numba.prange(a.size):\n"
        "        s += a[i]\n"
        "    return s\n"
        "f(np.ones(10))\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    import twinkernel.kernels\n"
        "print([str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert "initialised before twinkernel's kernels were imported" in out.stdout


def _run(script: str, **env: str) -> str:
    import os
    import subprocess
    import sys

    environ = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    environ.update(env)
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120, env=environ
    )
    return out.stdout.strip()


def test_kernels_pin_a_safe_layer_when_first_imported():
    script = (
        "import numba\n"
        "before = numba.config.THREADING_LAYER\n"
        "import twinkernel.kernels\n"
        "print(before, numba.config.THREADING_LAYER)\n"
    )
    assert _run(script) == "default threadsafe"


@pytest.mark.parametrize("layer", ["omp", "tbb", "workqueue"])
def test_numba_threading_layer_env_overrides_the_pin(layer):
    script = (
        "import warnings, numba\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    import twinkernel.kernels\n"
        "print(numba.config.THREADING_LAYER, any('workqueue' in str(w.message) for w in caught))\n"
    )
    assert _run(script, NUMBA_THREADING_LAYER=layer) == f"{layer} {layer == 'workqueue'}"


def test_models_and_config_leave_the_threading_layer_alone():
    """Importing twinkernel.models / twinkernel.config must not touch numba's global state."""
    script = (
        "import sys, numba\n"
        "import twinkernel.config, twinkernel.models\n"
        "print('twinkernel.kernels' in sys.modules, numba.config.THREADING_LAYER)\n"
    )
    imported, layer = _run(script).split()
    if imported == "True":
        pytest.skip("twinkernel.models still imports the kernels (the package's lazy imports are not merged)")
    assert layer == "default"
