"""Cross-check against EconML's ``LinearDML`` on the same data, folds and nuisance models.

With the modifier slopes held at the configuration's (``learn_modifiers: []``) the effect model's effect is
b · M(x) with M known, which is ``LinearDML`` with X = M(x), no CATE intercept and the features as controls W.
Both use the same cross-fitting folds and the same gradient-boosting nuisance models (no trimming here,
EconML does not trim), so the base effects must agree within one standard error. EconML is an optional test
dependency: ``pip install econml`` (0.17 works with the project's scikit-learn); skipped without it.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.effect_learning_data import designed_history
from twinkernel import get_config
from twinkernel.effect_learning import learn_effect
from twinkernel.effect_learning.api import _modifier_inputs, _prior
from twinkernel.effect_learning.final_stage import BASE, tau_and_jacobian
from twinkernel.effect_learning.nuisance import _estimator, assign_folds, encode_features

econml_dml = pytest.importorskip(
    "econml.dml", reason="EconML is not installed (optional: pip install econml)"
)
pytestmark = pytest.mark.slow

TYPE = "digital_engagement"


def test_base_effect_agrees_with_econml_linear_dml():
    cfg = get_config()
    el = cfg.effect_learning.model_copy(
        update={"learn_modifiers": (), "propensity_low": 1e-9, "propensity_high": 1.0 - 1e-9}
    )
    cfg = cfg.model_copy(update={"effect_learning": el})
    df = designed_history(8000, seed=21)
    ours = learn_effect(
        df, intervention_type=TYPE, treatment_col="treated", outcome_col="brand_share", seed=4, config=cfg
    )
    assert ours.names == ("base_effect",) and ours.diagnostics.n_trimmed == 0

    x, cat = encode_features(df, ours.diagnostics.features)
    fold = assign_folds(df, None, el.folds, 4)
    splits = [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(el.folds)]
    eff = cfg.simulation.intervention_effects
    inp, _ = _modifier_inputs(df, eff, cfg, TYPE, [])
    m = tau_and_jacobian({BASE: 1.0}, [BASE], inp, _prior(eff, TYPE))[1][:, 0]
    cat_xw = np.concatenate([[False], cat])  # EconML fits the nuisance models on [X, W]
    est = econml_dml.LinearDML(
        model_y=_estimator("regressor", el.nuisance, cat_xw, 4),
        model_t=_estimator("classifier", el.nuisance, cat_xw, 4),
        discrete_treatment=True,
        fit_cate_intercept=False,
        cv=splits,
        random_state=0,
    )
    est.fit(df["brand_share"].to_numpy(), df["treated"].to_numpy(), X=m[:, None], W=x)
    theirs = float(np.ravel(est.coef_)[0])
    lo, hi = (float(np.ravel(v)[0]) for v in est.coef__interval(alpha=0.05))
    their_se = (hi - lo) / (2 * 1.959963984540054)
    print(
        f"twinkernel {ours.base_effect:.5f} ± {ours.base_effect_sd:.5f}; EconML {theirs:.5f} ± {their_se:.5f}"
    )
    assert abs(theirs - ours.base_effect) < ours.base_effect_sd
    assert 0.7 < their_se / ours.base_effect_sd < 1.3
