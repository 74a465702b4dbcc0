"""A minimal Streamlit protocol client for load tests: one websocket per session, speaking the
app's own protobuf messages (BackMsg out, ForwardMsg in), so 20 sessions cost 20 sockets instead
of 20 browser tabs. Each interaction is timed from the rerun request to ``script_finished``.

    async with Session(url) as s:
        await s.run()                       # first page
        await s.open("select")              # a page by its URL path name
        await s.set_slider("Subset size (% of pairs)", 25.0)

An interaction "fails" when the run shows an exception element or an error box, or when the
connection drops; ``Session.errors`` collects what was seen.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.asyncio.client import connect


@dataclass
class Session:
    url: str  # http://127.0.0.1:PORT
    timeout_s: float = 120.0
    timings: list[tuple[str, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    pages: dict[str, str] = field(default_factory=dict)  # url path name → page script hash
    page_hash: str = ""
    widgets: dict[str, WidgetState] = field(default_factory=dict)  # widget id → its current state
    labels: dict[str, str] = field(default_factory=dict)  # widget label → id (current page)
    metrics: dict[str, str] = field(default_factory=dict)  # metric label → shown value (last run)

    async def __aenter__(self) -> "Session":
        self.socket = await connect(self.url.replace("http", "ws", 1) + "/_stcore/stream",
                                    subprotocols=["streamlit"], max_size=None, open_timeout=self.timeout_s)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.socket.close()

    async def run(self, what: str = "first run") -> float:
        self.metrics = {}
        message = BackMsg()
        message.rerun_script.page_script_hash = self.page_hash
        message.rerun_script.widget_states.widgets.extend(self.widgets.values())
        started = time.perf_counter()
        await self.socket.send(message.SerializeToString())
        await asyncio.wait_for(self._until_finished(what), self.timeout_s)
        elapsed = time.perf_counter() - started
        self.timings.append((what, elapsed))
        return elapsed

    async def open(self, page: str) -> float:
        self.page_hash, self.widgets, self.labels = self.pages[page], {}, {}
        return await self.run(f"open {page or 'data'}")

    async def click(self, label: str) -> float:
        state = WidgetState(id=self.labels[label], trigger_value=True)
        self.widgets[state.id] = state
        try:
            return await self.run(f"click {label}")
        finally:
            self.widgets.pop(state.id, None)  # a trigger fires once

    async def set_slider(self, label: str, value: float) -> float:
        state = WidgetState(id=self.labels[label])
        state.double_array_value.data.append(float(value))
        self.widgets[state.id] = state
        return await self.run("slider")

    async def _until_finished(self, what: str) -> None:
        while True:
            try:
                raw = await self.socket.recv()
            except Exception as err:  # noqa: BLE001 - any drop is an error of this session
                self.errors.append(f"{what}: connection closed ({type(err).__name__})")
                raise
            message = ForwardMsg()
            message.ParseFromString(raw)
            kind = message.WhichOneof("type")
            if kind == "navigation":
                self.pages = {p.url_pathname or "": p.page_script_hash for p in message.navigation.app_pages}
                self.page_hash = self.page_hash or message.navigation.page_script_hash
            elif kind == "delta" and message.delta.WhichOneof("type") == "new_element":
                self._element(message.delta.new_element, what)
            elif kind == "script_finished":
                # 2 = ended early because a rerun (st.rerun, a newer request) follows: keep reading
                if message.script_finished == ForwardMsg.FINISHED_WITH_COMPILE_ERROR:
                    self.errors.append(f"{what}: the page did not compile")
                if message.script_finished in (ForwardMsg.FINISHED_SUCCESSFULLY,
                                               ForwardMsg.FINISHED_WITH_COMPILE_ERROR):
                    return

    def _element(self, element, what: str) -> None:
        kind = element.WhichOneof("type")
        if kind == "exception":
            self.errors.append(f"{what}: exception {element.exception.type}: {element.exception.message[:200]}")
        elif kind == "alert" and element.alert.format == 1:  # ERROR
            self.errors.append(f"{what}: error box: {element.alert.body[:200]}")
        elif kind in ("slider", "button"):
            widget = getattr(element, kind)
            self.labels[widget.label] = widget.id
        elif kind == "metric":
            self.metrics[element.metric.label] = element.metric.body


SLIDER = "Subset size (% of pairs)"


async def browse_and_slide(url: str, moves: list[float], *, timeout_s: float = 120.0,
                           think: tuple[float, float] | None = None, seed: int = 0) -> Session:
    """One user: Data page, Select page, the subset slider through ``moves`` (checking that "Points
    kept" follows each value), the Map page, back to Data. ``think``: (low, high) seconds of pause
    before each interaction after the first, drawn uniformly (a person reading the page); pauses
    are not part of the timings."""
    import random

    rng = random.Random(seed)

    async def pause() -> None:
        if think is not None:
            await asyncio.sleep(rng.uniform(*think))

    async with Session(url, timeout_s=timeout_s) as session:
        try:
            await session.run("open data")
            await pause()
            await session.open("select")
            for percent in moves:
                await pause()
                await session.set_slider(SLIDER, percent)
                kept = session.metrics.get("Pairs kept", "")
                total = int(kept.split(" of ")[-1].replace(",", "")) if " of " in kept else 0
                if not total or kept.split(" of ")[0].replace(",", "") != str(max(1, round(percent / 100 * total))):
                    session.errors.append(f"slider {percent}: 'Pairs kept' shows {kept!r}")
            await pause()
            await session.open("map")
            await pause()
            await session.open("")
        except Exception as err:  # noqa: BLE001 - recorded; a load test reports, it does not stop
            session.errors.append(f"{type(err).__name__}: {err}")
    return session


async def load(url: str, n_sessions: int, moves: int, *, seed: int = 0, timeout_s: float = 120.0,
               think: tuple[float, float] | None = None) -> list[Session]:
    """``n_sessions`` users at once, each with its own seeded slider values (and pauses)."""
    import random

    plans = [[random.Random(seed * 1000 + i).choice(range(1, 201)) / 2 for _ in range(moves)] for i in range(n_sessions)]
    return list(await asyncio.gather(*(browse_and_slide(url, plan, timeout_s=timeout_s, think=think,
                                                        seed=seed * 1000 + i)
                                       for i, plan in enumerate(plans))))


def summary(sessions: list[Session]) -> dict:
    """p50/p95/max per interaction kind and overall, and every error seen."""
    import numpy as np

    def stats(values: list[float]) -> dict:
        array = np.asarray(values, dtype=float)
        return {"n": int(array.size), "p50_s": round(float(np.percentile(array, 50)), 3),
                "p95_s": round(float(np.percentile(array, 95)), 3), "max_s": round(float(array.max()), 3)} if array.size else {}

    kinds: dict[str, list[float]] = {}
    for session in sessions:
        for what, seconds in session.timings:
            kinds.setdefault("slider" if what == "slider" else what, []).append(seconds)
    return {"sessions": len(sessions), "all": stats([t for values in kinds.values() for t in values]),
            "by_interaction": {kind: stats(values) for kind, values in sorted(kinds.items())},
            "errors": [e for session in sessions for e in session.errors]}
