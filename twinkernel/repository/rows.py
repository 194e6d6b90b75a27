"""Turn what callers store (results, pydantic models, dicts) into JSON payloads and table rows."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..models import SimulationResult

__all__ = [
    "KINDS",
    "TERMINAL_JOB_STATES",
    "TwinModelRecord",
    "from_db_time",
    "payload_of",
    "row_for",
    "to_db_time",
]

TERMINAL_JOB_STATES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
"""Retraining-job states after which a job is no longer open."""


class TwinModelRecord(BaseModel):
    """One row of ``twin_models``: a trained twin model and where its lineage lives."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    id: str = Field(min_length=1, max_length=64)
    twin_type: str = Field(min_length=1, max_length=32)
    brand: str | None = None
    training_metrics: dict[str, Any] = Field(default_factory=dict)
    generator_version: str | None = None
    effect_model_version: str | None = None
    mlflow_run_id: str | None = None
    mlflow_model_version: str | None = None
    status: str = Field(default="trained", min_length=1, max_length=32)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    promoted_at: datetime | None = None


def to_db_time(value: Any) -> datetime | None:
    """A datetime (or ISO text) as naive UTC, the stored convention; ``None`` stays ``None``."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime or ISO-8601 text; got {type(value).__name__}")
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def from_db_time(value: datetime | None) -> datetime | None:
    """A stored naive-UTC datetime as timezone-aware UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _to_date(value: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def payload_of(kind: str, obj: Any) -> dict[str, Any]:
    """The JSON-ready form of ``obj`` that the outbox keeps and :func:`row_for` reads back.

    ``obj`` is a :class:`~twinkernel.models.SimulationResult` for ``simulation``; for the other kinds any
    pydantic model or mapping with a non-empty ``id``.
    """
    if kind == "simulation":
        if not isinstance(obj, SimulationResult):
            raise TypeError(f"`result` must be a SimulationResult; got {type(obj).__name__}")
        return obj.model_dump(mode="json")
    if kind == "model" and isinstance(obj, Mapping):
        obj = TwinModelRecord.model_validate(obj)
    if isinstance(obj, BaseModel):
        payload = obj.model_dump(mode="json")
    elif isinstance(obj, Mapping):
        payload = json.loads(json.dumps(dict(obj), default=str))
    else:
        raise TypeError(f"a {kind} record must be a pydantic model or a mapping; got {type(obj).__name__}")
    ident = payload.get("id")
    if ident is None or str(ident) == "":
        raise ValueError(f"a {kind} record must have a non-empty `id`; got {ident!r}")
    payload["id"] = str(ident)
    return payload


def _simulation_row(p: dict[str, Any], recorded_at: str) -> dict[str, Any]:
    result = SimulationResult.model_validate(p)
    return {
        "simulation_id": str(result.simulation_id),
        "request_digest": result.request_digest,
        "model_id": result.model_id,
        "intervention_type": result.intervention_config.intervention_type,
        "ate": result.simulated_ate,
        "ci_lower": result.simulated_ci_lower,
        "ci_upper": result.simulated_ci_upper,
        "confidence_level": result.confidence_level,
        "twin_count": result.twin_count,
        "recommendation": None if result.recommendation is None else result.recommendation.value,
        "status": result.status.value,
        "created_at": to_db_time(result.created_at),
        "result_json": result.model_dump_json(),
    }


def _model_row(p: dict[str, Any], recorded_at: str) -> dict[str, Any]:
    rec = TwinModelRecord.model_validate(p)
    row = rec.model_dump()
    row["created_at"] = to_db_time(rec.created_at)
    row["promoted_at"] = to_db_time(rec.promoted_at)
    return row


def _created(p: dict[str, Any], recorded_at: str, *names: str) -> datetime:
    for name in names:
        if p.get(name) is not None:
            return to_db_time(p[name])  # type: ignore[return-value]
    return to_db_time(recorded_at)  # type: ignore[return-value]


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _fidelity_row(p: dict[str, Any], recorded_at: str) -> dict[str, Any]:
    sim = p.get("simulation_id")
    return {
        "id": p["id"],
        "model_id": None if p.get("model_id") is None else str(p["model_id"]),
        "simulation_id": None if sim is None else str(sim),
        "created_at": _created(p, recorded_at, "created_at", "predicted_at", "recorded_at"),
        "payload": p,
    }


def _job_row(p: dict[str, Any], recorded_at: str) -> dict[str, Any]:
    state = p.get("state", p.get("status"))
    if state is None:
        raise ValueError(f"a job record must have a `state` (or `status`); got keys {sorted(p)}")
    created = _created(p, recorded_at, "created_at")
    return {
        "id": p["id"],
        "model_id": None if p.get("model_id") is None else str(p["model_id"]),
        "state": str(state).lower(),
        "reason": p.get("reason"),
        "attempts": int(p.get("attempts") or 0),
        "fidelity_before": _optional_float(p.get("fidelity_before")),
        "fidelity_after": _optional_float(p.get("fidelity_after")),
        "created_at": created,
        "updated_at": _created(p, recorded_at, "updated_at") if p.get("updated_at") is not None else created,
        "payload": p,
    }


def _experiment_row(p: dict[str, Any], recorded_at: str) -> dict[str, Any]:
    itype = p.get("intervention_type")
    if itype is None and isinstance(p.get("intervention_config"), Mapping):
        itype = p["intervention_config"].get("intervention_type")
    completed = p.get("completed_date", p.get("completion_date", p.get("completed_at")))
    return {
        "id": p["id"],
        "intervention_type": itype,
        "completed_date": _to_date(completed),
        "payload": p,
    }


_BUILDERS = {
    "simulation": _simulation_row,
    "model": _model_row,
    "fidelity": _fidelity_row,
    "job": _job_row,
    "experiment": _experiment_row,
}
KINDS: tuple[str, ...] = tuple(_BUILDERS)


def row_for(kind: str, payload: dict[str, Any], recorded_at: str) -> dict[str, Any]:
    """The table row for one payload of ``kind``."""
    try:
        builder = _BUILDERS[kind]
    except KeyError:
        raise ValueError(f"`kind` must be one of {KINDS}; got {kind!r}") from None
    return builder(payload, recorded_at)
