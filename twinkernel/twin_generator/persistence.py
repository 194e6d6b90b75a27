"""Saving and loading a trained generator: ``generator.json`` (model id, configuration, settings,
marginals, correlations, propensity model, metrics, the effect model learned alongside, scikit-learn
version) and ``models.joblib`` (the scikit-learn estimator, a pickle: load only files you trust).

Format 2 added ``effect_model`` (:meth:`EffectModel.to_dict`, ``None`` when none was learned). Format 1
files still load, without an effect model; an older twinkernel refuses a format-2 file by name instead of
silently dropping its effect model."""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from ..config import config_from_mapping, get_config
from .marginals import ColumnMarginal
from .mixture import MixtureComponent
from .outcome import TwinModelMetrics
from .propensity import PropensityModel
from .trees import compile_trees

if TYPE_CHECKING:
    from .training import TwinGenerator

FORMAT = "twinkernel.twin_generator/2"
READABLE_FORMATS = ("twinkernel.twin_generator/1", FORMAT)
META_FILE = "generator.json"
MODELS_FILE = "models.joblib"


def model_id(gen: TwinGenerator, frame: pl.DataFrame, train_idx: np.ndarray) -> str:
    """``twin-<type>-<hash>`` of the model's definition, settings, data and training rows, and of the effect
    model learned with it (``train(effect_types=...)``: its id, a digest of the learned effects, and the
    configured effects it starts from). Generators without an effect model hash what they always did."""
    inputs: list[Any] = [
        gen.target_col,
        list(gen.feature_cols),
        gen.algorithm,
        gen.treatment_col,
        gen.settings,
        gen.tg.model_dump(mode="json"),
    ]
    if gen.effect_model is not None:
        inputs.append(
            {
                "effect_model_id": gen.effect_model.model_id,
                "intervention_effects": gen.config.simulation.intervention_effects.model_dump(mode="json"),
            }
        )
    h = hashlib.blake2b(digest_size=8)
    h.update(json.dumps(inputs).encode())
    h.update(np.ascontiguousarray(frame.hash_rows(seed=17).to_numpy()).tobytes())
    h.update(train_idx.tobytes())
    return f"twin-{gen.twin_type.value}-{h.hexdigest()}"


def to_artifacts(gen: TwinGenerator) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fitted state as (JSON-ready metadata, estimators)."""
    import sklearn

    assert gen.latent_correlation is not None and gen.data_correlation is not None
    meta = {
        "format": FORMAT,
        "model_id": gen.model_id,
        "twin_type": gen.twin_type.value,
        "brand": gen.brand,
        "config": gen.config.model_dump(mode="json"),
        "settings": gen.settings,
        "sklearn_version": sklearn.__version__,
        "target_col": gen.target_col,
        "feature_cols": list(gen.feature_cols),
        "treatment_col": gen.treatment_col,
        "algorithm": gen.algorithm,
        "residual_sd": gen.residual_sd,
        "n_training_rows": gen.n_training_rows,
        "marginals": [m.to_dict() for m in gen.marginals],
        "latent_correlation": gen.latent_correlation.tolist(),
        "data_correlation": gen.data_correlation.tolist(),
        "propensity": None if gen.propensity is None else gen.propensity.to_dict(),
        "components": [c.to_dict() for c in gen.components],
        "metrics": None if gen.metrics is None else gen.metrics.to_dict(),
        "effect_model": None if gen.effect_model is None else gen.effect_model.to_dict(),
    }
    return meta, {"outcome_model": gen.outcome_model}


def save(gen: TwinGenerator, path: str | Path) -> Path:
    """Write ``generator.json`` and ``models.joblib`` into the directory ``path``; returns it."""
    import joblib

    meta, estimators = to_artifacts(gen)
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    (p / META_FILE).write_text(json.dumps(meta), encoding="utf-8")
    joblib.dump(estimators, p / MODELS_FILE)
    return p


def _merge(defaults: Mapping[str, Any], saved: Mapping[str, Any]) -> dict[str, Any]:
    """``saved`` over ``defaults``, recursively: keys added to the configuration since the save take the
    current defaults (which reproduce the earlier behaviour)."""
    out = dict(defaults)
    for key, value in saved.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load(cls: type[TwinGenerator], path: str | Path) -> TwinGenerator:
    """Read a generator written by :func:`save` (same model id, configuration and fitted state)."""
    import joblib
    import sklearn

    p = Path(path)
    try:
        meta = json.loads((p / META_FILE).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read a saved generator at {p}: {exc.strerror or exc}") from None
    if meta.get("format") not in READABLE_FORMATS:
        raise ValueError(
            f"{p} does not hold a saved TwinGenerator this version reads (format {meta.get('format')!r}; "
            f"readable: {', '.join(READABLE_FORMATS)})"
        )
    if meta["sklearn_version"] != sklearn.__version__:
        warnings.warn(
            f"generator saved with scikit-learn {meta['sklearn_version']}, "
            f"loading with {sklearn.__version__}",
            stacklevel=3,
        )
    saved_config = _merge(get_config().model_dump(mode="json"), meta["config"])
    config = config_from_mapping(saved_config, source=str(p / META_FILE))
    gen = cls(meta["twin_type"], meta["brand"], config, **meta["settings"])
    estimators = joblib.load(p / MODELS_FILE)
    gen.model_id = meta["model_id"]
    gen.target_col = meta["target_col"]
    gen.feature_cols = tuple(meta["feature_cols"])
    gen.treatment_col = meta["treatment_col"]
    gen.algorithm = meta["algorithm"]
    gen.residual_sd = meta["residual_sd"]
    gen.n_training_rows = meta["n_training_rows"]
    gen.marginals = tuple(ColumnMarginal.from_dict(m) for m in meta["marginals"])
    gen.latent_correlation = np.asarray(meta["latent_correlation"], dtype=np.float64)
    gen.data_correlation = np.asarray(meta["data_correlation"], dtype=np.float64)
    gen.chol = np.linalg.cholesky(gen.latent_correlation)
    gen.components = tuple(MixtureComponent.from_dict(c) for c in meta.get("components", []))
    gen.outcome_model = estimators["outcome_model"]
    gen.trees = compile_trees(gen.outcome_model) if gen.algorithm == "hist_gradient_boosting" else None
    if meta["propensity"] is not None:
        gen.propensity = PropensityModel.from_dict(meta["propensity"])
    if meta["metrics"] is not None:
        gen.metrics = TwinModelMetrics.from_dict(meta["metrics"])
    if meta.get("effect_model") is not None:  # absent in format 1
        from ..effect_model import EffectModel

        gen.effect_model = EffectModel.from_dict(meta["effect_model"], config)
    return gen
