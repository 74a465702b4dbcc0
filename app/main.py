"""alignscope web app: entry point. Run with ``alignscope app`` (never ``streamlit run`` by hand:
the command sets the safe defaults, the data root and the host)."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from alignscope.app import report_download, state

def _icon():
    """The tab icon, drawn here: a material-icon or emoji favicon is fetched from the internet by the
    page, which fails offline (and leaks that the app is open)."""
    from PIL import Image, ImageDraw

    icon = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    draw = ImageDraw.Draw(icon)
    draw.ellipse((6, 6, 58, 58), outline=(31, 119, 180, 255), width=8)
    draw.line((44, 44, 60, 60), fill=(31, 119, 180, 255), width=9)
    return icon


st.set_page_config(page_title="alignscope", page_icon=_icon(), layout="wide")

# Not "pages/": Streamlit would auto-list that folder as a second, unmanaged navigation.
PAGES = Path(__file__).parent / "views"
pages = {page.url_path or "data": page for page in (
    st.Page(PAGES / "data.py", title="Data", icon=":material/table_view:", default=True),
    st.Page(PAGES / "map.py", title="Map", icon=":material/scatter_plot:"),
    st.Page(PAGES / "select.py", title="Select", icon=":material/filter_alt:"),
    st.Page(PAGES / "audit.py", title="Audit", icon=":material/rule:"),
    st.Page(PAGES / "train.py", title="Train", icon=":material/model_training:"),
    st.Page(PAGES / "scheduler.py", title="Scheduler", icon=":material/low_priority:"),
    st.Page(PAGES / "scaling.py", title="Scaling", icon=":material/trending_up:"),
    st.Page(PAGES / "spectra.py", title="Spectra", icon=":material/ssid_chart:"),
    st.Page(PAGES / "runs.py", title="Runs", icon=":material/list_alt:"),
)}
navigation = st.navigation(list(pages.values()))
current = navigation.url_path or "data"
# The link: the data set, page, sweep, selection and run in the URL (state.py says how).
state.ensure_initial_data()
state.restore_link(pages, current)
state.seed_page_widgets()
state.sync_link(current)
state.sidebar_summary()
report_download.sidebar_button()
state.show_link_notes()
try:
    navigation.run()
finally:  # what the page chose in this run (e.g. a selection) goes into the URL now, not at the next click
    state.sync_link(current)
