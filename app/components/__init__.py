"""Streamlit components of the app (built assets committed; see each one's frontend/)."""
