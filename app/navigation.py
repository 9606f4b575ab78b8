"""Where the page files are, and going from one page to another."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

PAGES = Path(__file__).resolve().parent.parent / "pages"


def go(url_path: str) -> None:
    """Switch to another page (its file is pages/<url_path>.py)."""
    st.switch_page(PAGES / f"{url_path}.py")
