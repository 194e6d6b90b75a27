"""A real experiment's outcome: what calibration learns from.

An :class:`ExperimentResult` is one real A/B test of an intervention: the intervention config, the population
filter it ran on (over the model's twins), the observed ATE with its standard error (or a confidence
interval, from which the SE follows), the arm sizes and the completion date.

Three ways in, as a service would send it:

- :meth:`ExperimentResult.from_dict` / ``model_validate`` (nested ``intervention`` and ``population_filter``
  mappings), and :meth:`ExperimentResult.from_json`;
- :meth:`ExperimentResult.from_csv_row`, a flat row of strings (see :data:`CSV_COLUMNS`).

:meth:`ExperimentResult.to_dict` is JSON-safe and round-trips through :meth:`from_dict`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date
from statistics import NormalDist
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .intervention import InterventionConfig, PopulationFilter

__all__ = ["CSV_COLUMNS", "CSV_LIST_SEPARATOR", "ExperimentResult"]

CSV_LIST_SEPARATOR = ";"
"""Separator of list values inside one CSV cell (``target_deciles = "1;2;3"``)."""

_SCALAR_COLUMNS: tuple[str, ...] = (
    "experiment_id",
    "observed_ate",
    "std_error",
    "ci_lower",
    "ci_upper",
    "confidence_level",
    "n_treated",
    "n_control",
    "completion_date",
)
_INTERVENTION_LISTS = ("target_deciles", "target_specialties", "target_regions")
_INTERVENTION_COLUMNS: tuple[str, ...] = (
    "intervention_type",
    "channel",
    "frequency",
    "duration_weeks",
    "content_type",
    "personalization_level",
    *_INTERVENTION_LISTS,
    "intensity_multiplier",
    "extra_params",
)
_FILTER_PREFIX = "filter_"
_FILTER_LISTS = ("specialties", "deciles", "regions", "adoption_stages")
_FILTER_COLUMNS: tuple[str, ...] = (*_FILTER_LISTS, "min_baseline_outcome", "max_baseline_outcome")

CSV_COLUMNS: tuple[str, ...] = (
    *_SCALAR_COLUMNS,
    "intervention",
    *_INTERVENTION_COLUMNS,
    "population_filter",
    *(_FILTER_PREFIX + c for c in _FILTER_COLUMNS),
)
"""Columns :meth:`ExperimentResult.from_csv_row` understands.

The intervention comes either as one JSON column ``intervention`` or as flat columns named like the
:class:`InterventionConfig` fields (``intervention_type``, ``channel``, ``duration_weeks``, ...; lists
separated by ``;``, ``extra_params`` as JSON). The population filter comes either as one JSON column
``population_filter`` or as flat columns ``filter_<field>`` (``filter_deciles = "8;9;10"``,
``filter_min_baseline_outcome = "0.1"``). An empty cell is a missing value.
"""


class ExperimentResult(BaseModel):
    """One real experiment of an intervention, as calibration consumes it.

    Give the standard error ``std_error``, or a confidence interval ``ci_lower`` / ``ci_upper`` with its
    ``confidence_level``, from which ``SE = (upper - lower) / (2 z)``, z the normal quantile at
    ``(1 + level) / 2``. When both are given, ``std_error`` is used.

    Examples
    --------
    >>> e = ExperimentResult(
    ...     experiment_id="exp-1",
    ...     intervention={"intervention_type": "email_campaign", "channel": "email"},
    ...     observed_ate=0.031,
    ...     ci_lower=0.011,
    ...     ci_upper=0.051,
    ...     confidence_level=0.95,
    ...     n_treated=800,
    ...     n_control=790,
    ...     completion_date="2026-03-14",
    ... )
    >>> round(e.standard_error, 5), e.intervention_type
    (0.0102, 'email_campaign')
    >>> ExperimentResult.from_dict(e.to_dict()) == e
    True
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    experiment_id: str = Field(min_length=1, max_length=200)
    intervention: InterventionConfig
    population_filter: PopulationFilter | None = None
    observed_ate: float = Field(allow_inf_nan=False)
    std_error: float | None = Field(default=None, gt=0.0, allow_inf_nan=False)
    ci_lower: float | None = Field(default=None, allow_inf_nan=False)
    ci_upper: float | None = Field(default=None, allow_inf_nan=False)
    confidence_level: float | None = Field(default=None, gt=0.0, lt=1.0)
    n_treated: int = Field(ge=1)
    n_control: int = Field(ge=1)
    completion_date: date

    @field_validator("experiment_id")
    @classmethod
    def _strip_id(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("experiment_id must not be blank")
        return v

    @model_validator(mode="after")
    def _uncertainty_given(self) -> ExperimentResult:
        lo, hi = self.ci_lower, self.ci_upper
        if (lo is None) != (hi is None):
            missing = "ci_upper" if hi is None else "ci_lower"
            raise ValueError(f"{missing} is required when the other CI bound is given")
        if lo is not None and hi is not None:
            if not lo < hi:
                raise ValueError(f"ci_lower ({lo}) must be below ci_upper ({hi})")
            if self.confidence_level is None:
                raise ValueError("confidence_level is required with ci_lower / ci_upper")
        elif self.std_error is None:
            raise ValueError(
                "std_error or a CI (ci_lower, ci_upper, confidence_level) is required; got neither"
            )
        return self

    # --- derived values ---------------------------------------------------------------------------------
    @property
    def standard_error(self) -> float:
        """The SE of ``observed_ate``: ``std_error`` if given, else (upper − lower) / (2 z)."""
        if self.std_error is not None:
            return self.std_error
        assert self.ci_lower is not None and self.ci_upper is not None and self.confidence_level is not None
        z = NormalDist().inv_cdf(0.5 + self.confidence_level / 2.0)  # stdlib: models never import scipy
        return (self.ci_upper - self.ci_lower) / (2.0 * z)

    @property
    def intervention_type(self) -> str:
        return self.intervention.intervention_type

    @property
    def n_total(self) -> int:
        return self.n_treated + self.n_control

    def age_days(self, as_of: date) -> float:
        """Days from completion to ``as_of`` (negative if it completed later)."""
        return float((as_of - self.completion_date).days)

    # --- conversion -------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe mapping (dates as ISO strings) that :meth:`from_dict` reads back."""
        return self.model_dump(mode="json")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExperimentResult:
        """Validate a mapping (nested ``intervention`` / ``population_filter`` mappings or models)."""
        return cls.model_validate(dict(data))

    @classmethod
    def from_json(cls, text: str | bytes) -> ExperimentResult:
        return cls.model_validate_json(text)

    @classmethod
    def from_csv_row(cls, row: Mapping[str, str | None]) -> ExperimentResult:
        """Read one flat CSV row of strings (as ``csv.DictReader`` yields); see :data:`CSV_COLUMNS`.

        Raises
        ------
        ValueError
            For an unknown column (naming it), a column given both as JSON and flat, a JSON cell that is
            not valid JSON, or any invalid value (pydantic's message names the field).

        Examples
        --------
        >>> row = {"experiment_id": "e7", "intervention_type": "sample_distribution",
        ...        "target_deciles": "8;9;10", "observed_ate": "0.012", "std_error": "0.004",
        ...        "n_treated": "500", "n_control": "500", "completion_date": "2026-05-01",
        ...        "filter_regions": "west", "filter_min_baseline_outcome": "0.0"}
        >>> e = ExperimentResult.from_csv_row(row)
        >>> f = e.population_filter
        >>> list(e.intervention.target_deciles), list(f.regions), f.min_baseline_outcome
        ([8, 9, 10], ['west'], 0.0)
        """
        cells = {str(k).strip(): v for k, v in row.items() if k is not None}
        unknown = sorted(set(cells) - set(CSV_COLUMNS))
        if unknown:
            raise ValueError(f"unknown CSV column(s) {unknown}; allowed columns are {list(CSV_COLUMNS)}")
        present = {k: v.strip() for k, v in cells.items() if v is not None and v.strip() != ""}
        data: dict[str, Any] = {k: present[k] for k in _SCALAR_COLUMNS if k in present}
        data["intervention"] = _nested(
            present, "intervention", "", _INTERVENTION_COLUMNS, _INTERVENTION_LISTS
        )
        filt = _nested(present, "population_filter", _FILTER_PREFIX, _FILTER_COLUMNS, _FILTER_LISTS)
        if filt:
            data["population_filter"] = filt
        return cls.model_validate(data)


def _json_cell(column: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"CSV column `{column}` must hold valid JSON; got {text!r} ({exc.msg})") from None


def _nested(
    present: Mapping[str, str],
    json_column: str,
    prefix: str,
    fields: tuple[str, ...],
    list_fields: tuple[str, ...],
) -> dict[str, Any]:
    flat = {f: present[prefix + f] for f in fields if prefix + f in present}
    if json_column in present:
        if flat:
            raise ValueError(
                f"CSV column `{json_column}` and flat columns {sorted(prefix + f for f in flat)} both given; "
                "use one or the other"
            )
        value = _json_cell(json_column, present[json_column])
        if not isinstance(value, dict):
            raise ValueError(
                f"CSV column `{json_column}` must hold a JSON object; got {present[json_column]!r}"
            )
        return value
    out: dict[str, Any] = {}
    for f, text in flat.items():
        if f in list_fields:
            out[f] = [part.strip() for part in text.split(CSV_LIST_SEPARATOR) if part.strip()]
        elif f == "extra_params":
            out[f] = _json_cell(prefix + f, text)
        else:
            out[f] = text
    return out
