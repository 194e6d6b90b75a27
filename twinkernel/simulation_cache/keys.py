"""Cache keys: the one place that turns a request digest into a storage key.

A result lives under ``{key_prefix}{model_id or 'none'}:{digest}`` where ``digest`` is
:meth:`SimulationRequest.digest() <twinkernel.models.SimulationRequest.digest>`: the engine computes it
before simulating (``get_or_compute``) and records it in the result (``SimulationResult.request_digest``),
so a result stored through ``cache_result`` and one stored by ``simulate`` share the same key.
"""

from __future__ import annotations

import hashlib
from uuid import UUID

from ..models.intervention import InterventionConfig, PopulationFilter

__all__ = ["index_keys", "lock_key", "model_namespace", "pointer_for", "result_key"]


def model_namespace(prefix: str, model_id: str | UUID | None) -> str:
    """``{prefix}{model_id or 'none'}``: the prefix of every key of one model.

    Examples
    --------
    >>> model_namespace("twin_sim:", None)
    'twin_sim:none'
    """
    return f"{prefix}{model_id if model_id is not None else 'none'}"


def result_key(prefix: str, model_id: str | UUID | None, request_digest: str) -> str:
    """The key of the result of the request whose digest is ``request_digest``.

    Examples
    --------
    >>> result_key("twin_sim:", "m1", "ab12")
    'twin_sim:m1:ab12'
    """
    return f"{model_namespace(prefix, model_id)}:{request_digest}"


def lock_key(namespace: str, request_digest: str) -> str:
    """The single-flight lock of one request."""
    return f"{namespace}:~lock:{request_digest}"


def index_keys(namespace: str) -> tuple[str, str, str]:
    """A model's bookkeeping keys: LRU index, "latest result" hash, pointer index."""
    return f"{namespace}:~lru", f"{namespace}:~latest", f"{namespace}:~ptrs"


def pointer_for(intervention_config: InterventionConfig, population_filter: PopulationFilter | None) -> str:
    """Hash of the canonical config and filter: the field of the "latest result" pointer.

    List order does not matter (the canonical JSON sorts lists); ``None`` is the empty filter.
    """
    pf = population_filter if population_filter is not None else PopulationFilter()
    text = f"cfg={intervention_config.canonical_json()}|filter={pf.canonical_json()}"
    return hashlib.sha256(text.encode()).hexdigest()
