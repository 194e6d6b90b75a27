"""Training and panel frames cut from a world's history."""

from __future__ import annotations

import polars as pl

from ._world import SyntheticWorld


# --- training frames -------------------------------------------------------------------------------------
def training_frame(world: SyntheticWorld, target_month: int = -1, lookback: int = 3) -> pl.DataFrame:
    """One row per entity: static columns, the prior outcome, the prediction month and the target.

    Columns added to the entity rows: ``prior_<outcome>`` (mean outcome over the ``lookback`` months before
    the target month), ``prior_<outcome>_as_of`` (the last month that mean used: the feature's own
    timestamp), ``month`` (the prediction time), ``treated`` (0/1 in the target month, with interventions)
    and the outcome of the target month.

    Examples
    --------
    >>> from twinkernel.synthetic import hcp_world
    >>> w = hcp_world(300, months=4, seed=0)
    >>> f = training_frame(w)
    >>> f.height, f["month"].n_unique(), bool((f["prior_brand_share_as_of"] < f["month"]).all())
    (300, 1, True)
    """
    months = world.months
    t = target_month % months if months else 0
    if t < 1:
        raise ValueError(f"`target_month` needs at least one earlier month; got {target_month} of {months}")
    y = world.outcome_col
    h = world.history
    first = max(0, t - lookback)
    prior = (
        h.filter((pl.col("month_index") >= first) & (pl.col("month_index") < t))
        .group_by(world.entity_col)
        .agg(pl.col(y).mean().alias(f"prior_{y}"), pl.col("month").max().alias(f"prior_{y}_as_of"))
    )
    keep = [world.entity_col, "month", y] + (["treated"] if "treated" in h.columns else [])
    target = h.filter(pl.col("month_index") == t).select(keep)
    if "treated" in target.columns:
        target = target.with_columns(pl.col("treated").cast(pl.Int8))
    out = world.entities.join(prior, on=world.entity_col, how="left").join(target, on=world.entity_col)
    return out.sort(world.entity_col)


def hcp_training_frame(world: SyntheticWorld, target_month: int = -1, lookback: int = 3) -> pl.DataFrame:
    """:func:`training_frame` for an HCP world (target ``brand_share``).

    Examples
    --------
    >>> from twinkernel.synthetic import hcp_world
    >>> f = hcp_training_frame(hcp_world(200, months=3, seed=0))
    >>> "prior_brand_share" in f.columns and "brand_share" in f.columns
    True
    """
    if world.kind != "hcp":
        raise ValueError(f"`world` must be an HCP world; got a {world.kind} world")
    return training_frame(world, target_month, lookback)


def panel_frame(world: SyntheticWorld) -> pl.DataFrame:
    """Entity-month rows from the second month on, with the previous month's outcome as a lag feature.

    Columns: static entity columns, ``month``, ``month_index``, ``<outcome>_lag1`` with its timestamp
    ``<outcome>_lag1_as_of`` (the previous month), ``treated`` (0/1, with interventions) and the outcome.
    Use it with ``time_col="month"`` and ``entity_col=world.entity_col`` for out-of-time training.

    Examples
    --------
    >>> from twinkernel.synthetic import hcp_world
    >>> p = panel_frame(hcp_world(100, months=4, seed=0))
    >>> p.height, int(p["month_index"].min())
    (300, 1)
    """
    y = world.outcome_col
    e = world.entity_col
    h = world.history.sort([e, "month_index"])
    lagged = h.with_columns(
        pl.col(y).shift(1).over(e).alias(f"{y}_lag1"),
        pl.col("month").shift(1).over(e).alias(f"{y}_lag1_as_of"),
    ).filter(pl.col("month_index") >= 1)
    keep = [e, "month", "month_index", f"{y}_lag1", f"{y}_lag1_as_of", y]
    if "treated" in h.columns:
        lagged = lagged.with_columns(pl.col("treated").cast(pl.Int8))
        keep.insert(-1, "treated")
    return world.entities.join(lagged.select(keep), on=e).sort([e, "month_index"])


def hcp_panel_frame(world: SyntheticWorld) -> pl.DataFrame:
    """:func:`panel_frame` for an HCP world."""
    if world.kind != "hcp":
        raise ValueError(f"`world` must be an HCP world; got a {world.kind} world")
    return panel_frame(world)
