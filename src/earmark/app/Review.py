"""The review app's entry: the frame every page shares (the project, the round's
progress line and the message about the last action), then the page chosen in the
navigation (``st.navigation``): Review, Dashboard, Browse.

``earmark review PROJECT`` runs this file; the pages live beside it
(``review_page.py``, ``pages/1_Dashboard.py``, ``pages/2_Browse.py``) and only call
``earmark.review``.
"""

from __future__ import annotations

import earmark_ui as ui
import streamlit as st

PAGES = [
    st.Page("review_page.py", title="Review", icon=":material/headphones:", default=True),
    st.Page("pages/1_Dashboard.py", title="Dashboard", icon=":material/monitoring:", url_path="dashboard"),
    st.Page("pages/2_Browse.py", title="Browse", icon=":material/search:", url_path="browse"),
]

page = st.navigation(PAGES)
st.set_page_config(page_title=f"earmark · {page.title}", page_icon=page.icon,
                   layout="centered" if page.title == "Review" else "wide")
ui.header(ui.project())
page.run()
