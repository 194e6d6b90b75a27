"""Importing twinkernel has no side effects: models and config never pull numba or scipy (issue 8)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


HEAVY = "[m for m in sys.modules if m.split('.')[0] in ('numba', 'scipy', 'llvmlite', 'sklearn')]"


@pytest.mark.parametrize(
    "statement",
    [
        "import twinkernel.models",
        "import twinkernel.config",
        "import twinkernel",
        "from twinkernel import InterventionConfig, PopulationFilter, SimulationResult, get_config",
        "from twinkernel.models import SimulationResult, FidelityRecord, DigitalTwin",
    ],
)
def test_light_imports_do_not_load_numba_or_scipy(statement):
    # Defect: `import twinkernel` (even for InterventionConfig alone) imported numba and scipy and changed
    # numba's threading layer.
    out = _run(
        f"""
        import sys
        {statement}
        from twinkernel.models import InterventionConfig
        cfg = InterventionConfig(intervention_type="email_campaign", channel="email")
        from twinkernel.config import get_config
        default = get_config().simulation.recommendations.default_duration_weeks
        print(cfg.duration_weeks == default, {HEAVY})
        """
    )
    assert out == "True []"


def test_every_public_name_resolves_lazily():
    out = _run(
        """
        import sys
        import twinkernel
        before = 'numba' in sys.modules
        missing = [name for name in twinkernel.__all__ if getattr(twinkernel, name, None) is None]
        listed = set(twinkernel.__all__) <= set(dir(twinkernel))
        try:
            twinkernel.NoSuchName
        except AttributeError as exc:
            error = str(exc)
        print(before, missing, listed, 'numba' in sys.modules, error)
        """
    )
    assert out == "False [] True True module 'twinkernel' has no attribute 'NoSuchName'"


def test_public_names_are_the_defining_objects():
    import twinkernel
    from twinkernel.models import InterventionConfig
    from twinkernel.simulation_engine import SimulationEngine
    from twinkernel.simulation_engine.engine import SimulationEngine as Defined

    assert twinkernel.InterventionConfig is InterventionConfig
    assert twinkernel.SimulationEngine is SimulationEngine is Defined
    assert callable(twinkernel.compile)
    assert twinkernel.synthetic.__name__ == "twinkernel.synthetic"


def test_compile_warms_every_kernel_and_reports_seconds():
    import twinkernel

    steps = twinkernel.compile()
    expected = {
        "import",
        "simulate",
        "simulate_selection",
        "trace",
        "sweep",
        "engine_intervals_poisson",
        "engine_intervals_blb",
        "total",
    } | {f"bootstrap_{r}{g}" for r in ("multinomial", "poisson", "blb") for g in ("", "_groups")}
    if importlib.util.find_spec("pandas") is not None:
        expected.add("from_pandas")
    assert set(steps) == expected
    assert all(isinstance(v, float) and v >= 0.0 for v in steps.values())
    assert steps["total"] >= sum(v for k, v in steps.items() if k != "total") * (1 - 1e-9)
