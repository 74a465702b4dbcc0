"""A small load test in the suite: 20 simultaneous sessions (Streamlit's own websocket protocol,
loopback only) browse and move the subset slider on one `alignscope app` server with demo data.
No session may see an error, and every slider move must show the count it asked for. (Speed is
measured by benchmarks/bench_load.py, not asserted here.)"""
from __future__ import annotations

import asyncio

from alignscope.jobs import JobStore
from benchmarks.common import start_app
from benchmarks.streamlit_client import Session, load, summary


async def _compute_embeddings(url: str) -> None:
    async with Session(url, timeout_s=300) as session:
        await session.run()
        await session.open("select")  # starts the static embedding job: no click
        assert not session.errors, session.errors


def test_twenty_sessions_browse_and_slide_without_errors(isolated_home, tmp_path):
    import os

    app, url, _ = start_app("--data", "demo:120", "--data-root", str(tmp_path))
    try:
        asyncio.run(_compute_embeddings(url))
        store = JobStore()
        job = store.list_jobs(kind="embed")[0]
        assert store.wait(job.id, timeout=600).status == "succeeded", store.logs(job.id)
        result = summary(asyncio.run(load(url, 20, 2, timeout_s=600)))
    finally:
        os.killpg(app.pid, 15)
        app.wait(timeout=60)
    assert result["errors"] == []
    assert result["by_interaction"]["slider"]["n"] == 40 and result["by_interaction"]["open map"]["n"] == 20
