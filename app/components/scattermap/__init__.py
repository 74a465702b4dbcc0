"""The WebGL map as a Streamlit component: every completion or pair of a data set drawn in the
browser with WebGL2, from binary payloads (:mod:`.payload`), offline.

Its code is ``static/`` (``index.html`` and a 23 kB ``main.js``, committed; rebuilt from
``frontend/src`` by ``frontend/build.sh``, which needs node: users and tests never do), served by
Streamlit from 127.0.0.1 like any component; nothing is fetched from elsewhere. The pairs' texts for
the tooltips are gzipped JSON shards under ``ALIGNSCOPE_HOME/cache/map_texts/<fingerprint>/``, served
by the same component route (that folder is registered as a second component path), fetched by the
browser only when a point is hovered.

:func:`draw` returns the component's last event, or None: ``{"kind": "select", "how": "lasso"|"box",
"items": base64 uint32, "count"}``, ``{"kind": "click", "item"}``, ``{"kind": "clear"}`` or
``{"kind": "no_webgl", "reason"}``, each with ``token`` and ``n`` (new events have a new pair).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import streamlit.components.v1 as components

from alignscope import settings

from .payload import Colours, Scene

STATIC = Path(__file__).resolve().parent / "static"


def available() -> bool:
    """Whether the built component is installed (a checkout or wheel without ``static/`` falls back
    to the Plotly map)."""
    return (STATIC / "index.html").is_file() and (STATIC / "main.js").is_file()


def texts_root() -> Path:
    return settings.home() / "cache" / "map_texts"


def _texts_component() -> str:
    """Registers the text-shard folder with Streamlit's component file route; returns its name."""
    root = texts_root()
    root.mkdir(parents=True, exist_ok=True)
    return components.declare_component("scattermap_texts", path=str(root)).name


def draw(scene: Scene, colours: Colours, *, key: str, height: int = 600, selected: np.ndarray | None = None,
         selection_key: str = "", focus: list[int] | None = None, texts_folder: str | None = None,
         view_key: str = "", regions: list[dict] | None = None, contours: list[dict] | None = None) -> dict | None:
    """Draw ``scene`` coloured by ``colours``; ``selected``: item indices shown as the selection;
    ``focus``: items ringed (a clicked pair); ``texts_folder``: the fingerprint folder of the text
    shards under :func:`texts_root` (None: tooltips show numbers only); ``regions``: labels drawn
    over the map, ``{"x", "y"`` (the scene's normalised coordinates), ``"text", "count"}``;
    ``contours``: density lines, ``{"share", "lines": [[x0, y0, x1, y1, ...], ...]}`` in the same
    coordinates."""
    component = components.declare_component("scattermap", path=str(STATIC))
    texts: dict[str, Any] | None = None
    if texts_folder:
        texts = {"base": f"../{_texts_component()}/{texts_folder}", "size": 500}
    chosen = None if selected is None or not len(selected) else np.asarray(selected, dtype="<u4").tobytes()
    return component(
        mode=scene.mode, xy=scene.xy, ids=scene.ids, sides=scene.sides, layout=scene.layout, order=scene.order,
        data_key=scene.key,
        codes=colours.codes, legend=colours.legend, colour_key=colours.key, selected=chosen,
        selection_key=selection_key, focus=[int(i) for i in (focus or [])], texts=texts, height=int(height),
        view_key=view_key, regions=regions or [], contours=contours or [], key=key, default=None)
