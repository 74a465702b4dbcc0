"""The sidebar's "Download report": the session's findings as ONE self-contained HTML file
(:mod:`alignscope.report`), built when the button is clicked, from what this session has: the active
data set, the Audit page's audit, the active selection, the sweep of the link (the Scaling page's
pick) and the data set's finished training runs."""
from __future__ import annotations

import html
from functools import lru_cache
from pathlib import Path

import streamlit as st

from alignscope import settings
from alignscope.app import state
from alignscope.run_files import EVAL_FILE

MAX_RUNS = 10  # the newest finished training runs of the data set


def _inputs(data) -> dict:
    """What the report of this session covers (each made on the active data)."""
    audit = st.session_state.get(state.AUDIT_TABLE_KEY)
    chosen = st.session_state.get(state.SELECTION_KEY)
    link = st.session_state.get(state.LINK_KEY) or {}
    sweep = None
    if link.get("sweep") and link.get("sweep_fp") == data.fingerprint:
        folder = settings.home() / "sweeps" / link["sweep"]
        sweep = folder if (folder / "sweep.json").exists() else None
    store = state.job_store()
    wal = store.path.with_name(store.path.name + "-wal")  # where SQLite's WAL mode writes first
    runs = _finished_runs(str(store.path), data.fingerprint, _stamp(store.path), _stamp(wal))
    return {"audit": audit["table"] if audit and audit.get("fingerprint") == data.fingerprint else None,
            "selection": chosen["path"] if chosen and chosen.get("fingerprint") == data.fingerprint
            and Path(chosen["path"]).exists() else None,
            "sweep": sweep, "runs": runs[::-1]}


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


@lru_cache(maxsize=8)
def _finished_runs(store_path: str, fingerprint: str, *stamps) -> list[str]:
    """The newest finished training runs of the data set, read again only when the job database
    changed (``stamps``): this button is on every page, and a query per rerun cost ~2 ms of each."""
    return [job.run_dir for job in state.job_store().list_jobs(status="succeeded", kind="train", limit=200,
                                                                reconcile=False)
            if job.config.get("data", {}).get("fingerprint") == fingerprint
            and (Path(job.run_dir) / EVAL_FILE).exists()][:MAX_RUNS]


def _document(data, inputs: dict) -> str:
    from alignscope.report import build_report

    try:
        return build_report(data, n_boot=200, **inputs)
    except Exception as err:  # noqa: BLE001 - a download must be a file, not a traceback
        return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>alignscope report</title></head><body>"
                f"<p>alignscope could not build this report: {html.escape(f'{type(err).__name__}: {err}')}</p>"
                "</body></html>")


def sidebar_button() -> None:
    """The button, under the sidebar's summary of the active data set."""
    data = state.active_data()
    if data is None:
        return
    inputs = _inputs(data)
    covers = ["data"] + [name for name in ("audit", "selection", "sweep") if inputs[name] is not None] + \
        ([f"{len(inputs['runs'])} run(s)"] if inputs["runs"] else [])
    with st.sidebar:
        st.download_button("Download report", data=lambda: _document(data, inputs),
                           file_name=f"alignscope-report-{data.fingerprint}.html", mime="text/html",
                           key="report_download", on_click="ignore", icon=":material/download:",
                           help="One HTML file that opens offline: the data set, the audit, the selection, the "
                                "scaling answer, the training runs beside the length rule, and the commands that "
                                "reproduce them. Covers: " + ", ".join(covers))
