"""The baseline of ``benchmarks.bench_pages``: a bare two-page Streamlit app (a title, a line of
text and a small table per page), so alignscope's page switches and cold start can be read as
ratios to what Streamlit itself costs on the same machine, in the same run."""
import pandas as pd
import streamlit as st


def _page(title: str) -> None:
    st.title(title)
    st.text(f"The {title.lower()} page of a bare Streamlit app.")
    st.dataframe(pd.DataFrame({"x": range(20), "y": [i * i for i in range(20)]}))


def one() -> None:
    _page("One")


def two() -> None:
    _page("Two")


st.navigation([st.Page(one, title="One", default=True), st.Page(two, title="Two")]).run()
