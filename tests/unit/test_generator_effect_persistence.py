"""A generator trained with ``effect_types`` keeps its learned effect model through ``save``/``load`` and
through MLflow lineage; generators saved before the effect model was persisted (format 1) still load."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tests.effect_learning_data import designed_history
from twinkernel import InterventionConfig, TwinGenerator
from twinkernel.twin_generator import persistence

TYPE = "digital_engagement"
OLD_FORMAT = "twinkernel.twin_generator/1"


@pytest.fixture(scope="module")
def history():
    return designed_history(3000, seed=21)


@pytest.fixture(scope="module")
def gen(history) -> TwinGenerator:
    g = TwinGenerator("hcp", permutation_repeats=1)
    g.train(history, "brand_share", time_col="month", treatment_col="treated", effect_types=TYPE, track=False)
    return g


def _effect_model_fields(model) -> tuple:
    """What two equal effect models share: id, provenance, learned effects and calibrations."""
    return model.model_id, model.provenance, model.learned, model.calibrations


def test_saved_generator_keeps_its_learned_effect_model(gen, tmp_path: Path):
    path = gen.save(tmp_path / "gen")
    meta = json.loads((path / persistence.META_FILE).read_text())
    assert meta["format"] == persistence.FORMAT == "twinkernel.twin_generator/2"
    saved = meta["effect_model"]["learned"][TYPE]
    assert saved["estimates"] == list(gen.effect_model.learned[TYPE].estimates)

    loaded = TwinGenerator.load(path)
    before, after = gen.effect_model.learned[TYPE], loaded.effect_model.learned[TYPE]
    assert after.names == before.names and after.names[0] == "base_effect"
    assert after.estimates == before.estimates  # JSON floats round-trip exactly
    assert after.std_errors == before.std_errors and all(math.isfinite(s) for s in after.std_errors)
    assert after.covariance == before.covariance
    assert after.diagnostics == before.diagnostics and after.fixed == before.fixed
    assert loaded.effect_model.provenance == gen.effect_model.provenance
    assert f"{TYPE}: learned from" in loaded.effect_model.provenance
    assert loaded.effect_model.model_id == gen.effect_model.model_id
    assert loaded.effect_model.model_id.startswith("learned-")
    cfg = InterventionConfig(intervention_type=TYPE, channel="digital")
    p_before, p_after = gen.effect_model.parameters(cfg), loaded.effect_model.parameters(cfg)
    assert np.array_equal(p_after.params, p_before.params)
    assert p_after.base_sd == p_before.base_sd == before.base_effect_sd
    assert _effect_model_fields(loaded.effect_model) == _effect_model_fields(gen.effect_model)
    assert loaded.effect_model.summary().equals(gen.effect_model.summary())
    assert loaded.generate(300, seed=4).frame.equals(gen.generate(300, seed=4).frame)


def test_a_format_1_save_still_loads_without_an_effect_model(gen, tmp_path: Path):
    path = gen.save(tmp_path / "old")
    meta_file = path / persistence.META_FILE
    meta = json.loads(meta_file.read_text())
    meta["format"] = OLD_FORMAT
    del meta["effect_model"]  # format 1 had no such key
    meta_file.write_text(json.dumps(meta))
    loaded = TwinGenerator.load(path)
    assert loaded.effect_model is None
    assert loaded.model_id == gen.model_id
    assert loaded.generate(300, seed=5).frame.equals(gen.generate(300, seed=5).frame)


def test_a_generator_without_effects_saves_none_and_loads_none(gen, tmp_path: Path):
    learned = gen.effect_model
    gen.effect_model = None
    try:
        path = gen.save(tmp_path / "plain")
    finally:
        gen.effect_model = learned
    assert json.loads((path / persistence.META_FILE).read_text())["effect_model"] is None
    assert TwinGenerator.load(path).effect_model is None


def test_an_unknown_format_is_refused_by_name(gen, tmp_path: Path):
    path = gen.save(tmp_path / "future")
    meta_file = path / persistence.META_FILE
    meta = json.loads(meta_file.read_text())
    meta["format"] = "twinkernel.twin_generator/99"
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"format 'twinkernel.twin_generator/99'; readable: .*/1, .*/2"):
        TwinGenerator.load(path)


def test_lineage_registers_and_reloads_the_effect_model(gen, history, tmp_path: Path):
    mlflow = pytest.importorskip("mlflow")
    from twinkernel.lineage import LineageTracker, data_fingerprint

    tracker = LineageTracker(data_dir=tmp_path)
    lineage = tracker.log_training(gen, data_fingerprint=data_fingerprint(history))
    assert lineage is not None and lineage.alias == "champion"
    client = mlflow.MlflowClient(tracking_uri=tracker.tracking_uri)
    run = client.get_run(lineage.run_id)
    assert run.data.params["effect_model_id"] == gen.effect_model.model_id
    logged_file = client.download_artifacts(lineage.run_id, "effect_model.json", str(tmp_path))
    logged = json.loads(Path(logged_file).read_text())
    assert logged == json.loads(json.dumps(gen.effect_model.to_dict()))

    loaded = tracker.load_generator(lineage.model_uri)
    assert loaded.effect_model.learned[TYPE].estimates == gen.effect_model.learned[TYPE].estimates
    assert loaded.effect_model.learned[TYPE].std_errors == gen.effect_model.learned[TYPE].std_errors
    assert loaded.effect_model.provenance == gen.effect_model.provenance
    assert _effect_model_fields(loaded.effect_model) == _effect_model_fields(gen.effect_model)
    assert loaded.effect_model.summary().equals(gen.effect_model.summary())


def test_model_id_covers_effect_types_and_treatment_col(history, gen):
    """Generators trained on the same rows with different ``effect_types`` or ``treatment_col`` carry
    different effect models (or none) and so get different ids; the same inputs give the same id."""

    def trained(**kwargs) -> TwinGenerator:
        g = TwinGenerator("hcp", permutation_repeats=1)
        g.train(history, "brand_share", time_col="month", track=False, **kwargs)
        return g

    no_effects = trained(treatment_col="treated")
    other_type = trained(treatment_col="treated", effect_types="email_campaign")
    two_types = trained(treatment_col="treated", effect_types=[TYPE, "email_campaign"])
    no_treatment = trained()
    assert no_effects.effect_model is None and other_type.effect_model is not None
    assert np.array_equal(no_effects.training_rows_, gen.training_rows_)  # same rows: only the inputs differ
    ids = [gen.model_id, no_effects.model_id, other_type.model_id, two_types.model_id, no_treatment.model_id]
    assert len(set(ids)) == 5, ids
    assert all(i.startswith("twin-hcp-") for i in ids)
    assert trained(treatment_col="treated", effect_types=TYPE).model_id == gen.model_id
    assert gen.metrics is not None and gen.metrics.model_id == gen.model_id
