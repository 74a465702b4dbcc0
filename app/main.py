"""alignscope web app: entry point. Run with ``alignscope app`` (never ``streamlit run`` by hand:
the command sets the safe defaults, the data root and the host)."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from alignscope.app import state

st.set_page_config(page_title="alignscope", page_icon=":material/biotech:", layout="wide")

PAGES = Path(__file__).parent / "pages"
navigation = st.navigation([
    st.Page(PAGES / "data.py", title="Data", icon=":material/table_view:", default=True),
    st.Page(PAGES / "runs.py", title="Runs", icon=":material/list_alt:"),
])
state.ensure_initial_data()
state.sidebar_summary()
navigation.run()
