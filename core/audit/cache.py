"""An audit computed once per data set, embedding and options, found by every front end.

The audit of 61,952 pairs takes a minute or more on 2 cores; the Audit page, ``alignscope audit``,
sweeps (``clean``/``fix``) and the report all need the same table. It is kept as an ordinary audit
parquet (:func:`~alignscope.audit.table.write_audit`) in ``settings.home()/cache/audit/``, keyed by
the data's fingerprint, the embeddings it read (their cache entry, which changes when they are
recomputed) and every :class:`~alignscope.audit.config.AuditConfig` field, so a second request
reads it in about a second. An ``audit`` job (:func:`audit_job`) computes it in the background with
progress, so a page never waits on it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from alignscope import settings
from alignscope.audit.config import AuditConfig
from alignscope.embed.encoders import cached_path, embed

__all__ = ["CACHE_VERSION", "audit_cache_path", "cached_audit", "audit_cached", "audit_job"]

CACHE_VERSION = 1  # bump when the audit's numbers change for the same inputs


def audit_cache_path(data: Any, config: AuditConfig, embeddings_path: str | Path | None) -> Path:
    """Where the audit of ``data`` with ``config`` on the embeddings in ``embeddings_path`` lives."""
    key = {"version": CACHE_VERSION, "fingerprint": data.fingerprint, "config": dataclasses.asdict(config),
           "embeddings": None if embeddings_path is None else Path(embeddings_path).name}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return settings.home() / "cache" / "audit" / f"{data.fingerprint}-{digest}.parquet"


def cached_audit(data: Any, config: AuditConfig) -> pd.DataFrame | None:
    """The audit table already computed for ``data`` and ``config`` (on the cached embeddings of
    ``config.encoder``), or None. Loads no model and embeds nothing."""
    from alignscope.audit.table import read_audit

    embeddings_path = cached_path(data, config.encoder)
    if embeddings_path is None:
        return None
    path = audit_cache_path(data, config, embeddings_path)
    if not path.is_file():
        return None
    try:
        return read_audit(path)
    except Exception:  # noqa: BLE001 - a damaged entry is a miss, recomputed by the caller
        return None


def audit_cached(data: Any, config: AuditConfig, *, report: Callable[[float, str], None] | None = None) -> pd.DataFrame:
    """:func:`cached_audit`, or the audit computed (embedding with ``config.encoder`` through the
    embedding cache) and kept for the next caller."""
    from alignscope.audit.table import audit, write_audit

    found = cached_audit(data, config)
    if found is not None:
        return found
    embeddings = embed(data, config.encoder, "completion", progress=False)
    table = audit(data, embeddings, config=config, report=report)
    path = audit_cache_path(data, config, cached_path(data, config.encoder))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_audit(table, path)
    return table


def audit_job(config: dict[str, Any], run_dir: Path, report: Callable[..., None]) -> dict[str, Any]:
    """The ``audit`` job kind: ``config = {"data": PreferenceData.spec(), "audit": AuditConfig fields}``;
    leaves the table in the audit cache (and its path in the job's result)."""
    from alignscope.data.preferences import load_spec

    data = load_spec(config["data"])
    options = AuditConfig(**config.get("audit", {})).validate()
    report(0.0, f"auditing {data.n_pairs:,} pairs")
    table = audit_cached(data, options, report=lambda fraction, message: report(fraction, message))
    path = audit_cache_path(data, options, cached_path(data, options.encoder))
    report(1.0, f"{int(table['suspect_flip'].sum()):,} suspected flips, {int(table['is_duplicate'].sum()):,} "
                "near-duplicates")
    return {"path": str(path), "n_pairs": int(len(table))}
