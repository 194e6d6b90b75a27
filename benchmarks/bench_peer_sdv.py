"""twinkernel's generator beside SDV's Gaussian copula on the same data (issue 12 item 5).

Run ``PYTHONPATH=. python benchmarks/bench_peer_sdv.py [rows] [sample_rows]``. SDV is optional (install it
without its deep-learning extras, see the stack notes); without it the script says so and exits 0. Both
models are fitted on the same training rows of :func:`tests.naive_generator.designed_frame` and judged by the
same :func:`twinkernel.twin_generator.fidelity.fidelity_report` (shapes, every pair, detection AUC, DCR).
Times are wall-clock seconds on whatever machine runs it: compare the two columns, not across machines.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path
from typing import Any

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.naive_generator import designed_frame  # noqa: E402
from twinkernel.twin_generator import TwinGenerator  # noqa: E402
from twinkernel.twin_generator.fidelity import FidelityReport, fidelity_report  # noqa: E402

TABLE = "hcp"


def _sdv() -> Any:
    try:
        from sdv.metadata import Metadata
        from sdv.single_table import GaussianCopulaSynthesizer
    except ImportError:
        return None
    return Metadata, GaussianCopulaSynthesizer


def _summary(rep: FidelityReport, p_ne: float) -> dict[str, float]:
    return {
        "shape score": rep.shape_score,
        "all-pairs score": rep.pair_score,
        "P(northeast | decile <= 3)": p_ne,
        "max |dCramer's V|": rep.max_cramers_v_difference,
        "detection ROC AUC": rep.detection_auc,
        "exact copies": rep.exact_copy_rate,
        "DCR / held-out DCR": float("nan") if rep.dcr_ratio is None else rep.dcr_ratio,
    }


def _p_ne(frame: pl.DataFrame) -> float:
    low = frame.filter(pl.col("decile") <= 3)
    return float(low["region"].cast(pl.String).eq("northeast").mean())


def compare(n_rows: int = 60_000, n_sample: int = 1_000_000, seed: int = 0) -> dict[str, dict[str, float]]:
    """Fit and sample both models; return ``{model: {metric: value}}`` (SDV missing: twinkernel only)."""
    data = designed_frame(n_rows, seed)
    gen = TwinGenerator("hcp", permutation_repeats=1)
    start = time.perf_counter()
    gen.train(data, "brand_share", entity_col="hcp_id")
    fit_s = time.perf_counter() - start
    gen.generate(1000, seed=1)  # compile outside the timing
    start = time.perf_counter()
    gen.generate(n_sample, seed=1)
    sample_s = time.perf_counter() - start
    cols = list(gen.columns)
    real, holdout = data[gen.training_rows_], data[gen.validation_rows_]
    twins = gen.generate(real.height, seed=2).frame
    fc, rs = gen.tg.fidelity, gen.tg.random_state
    ours = fidelity_report(real, twins, cols, fc, rs, holdout=holdout, threads=gen.tg.sklearn_threads)
    out = {"twinkernel (mixture)": {"fit s": fit_s, "sample s": sample_s, **_summary(ours, _p_ne(twins))}}

    sdv = _sdv()
    if sdv is None:
        return out
    metadata_cls, synth_cls = sdv
    pdf = real.select(cols).to_pandas()
    for c in ("specialty", "region"):
        pdf[c] = pdf[c].astype(str)
    metadata = metadata_cls.detect_from_dataframes({TABLE: pdf})
    synth = synth_cls(metadata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        synth.fit({TABLE: pdf})
        sdv_fit = time.perf_counter() - start
        start = time.perf_counter()
        synth.sample(n_sample)
        sdv_sample = time.perf_counter() - start
        peer = synth.sample(real.height)
    if isinstance(peer, dict):  # SDV 2.0 returns {table: frame}
        peer = peer[TABLE]
    peer_pl = pl.from_pandas(peer).with_columns(
        pl.col("specialty").cast(real["specialty"].dtype), pl.col("region").cast(real["region"].dtype)
    )
    theirs = fidelity_report(real, peer_pl, cols, fc, rs, holdout=holdout, threads=gen.tg.sklearn_threads)
    out["SDV GaussianCopula"] = {"fit s": sdv_fit, "sample s": sdv_sample, **_summary(theirs, _p_ne(peer_pl))}
    return out


def main(argv: list[str]) -> int:
    n_rows = int(argv[1]) if len(argv) > 1 else 60_000
    n_sample = int(argv[2]) if len(argv) > 2 else 1_000_000
    if _sdv() is None:
        print("sdv is not installed: twinkernel only (pip install sdv --no-deps, see STACK-NOTES)")
    res = compare(n_rows, n_sample)
    models = list(res)
    print(f"| ({n_rows} rows, sample {n_sample}) | " + " | ".join(models) + " |")
    print("|---|" + "---|" * len(models))
    for metric in res[models[0]]:
        print(f"| {metric} | " + " | ".join(f"{res[m][metric]:.3f}" for m in models) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
