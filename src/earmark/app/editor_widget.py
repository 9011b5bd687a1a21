"""The review editor as a Streamlit component (``st.components.v2``): the clip's audio,
its waveform and the editable transcript in one element, whose save, skip and
keep-alive come back to Python as trigger events.

The component is defined once per process; its HTML and script come from
:mod:`earmark.review.editor`, which ships them in the package.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import streamlit as st

from earmark.review.editor import asset

#: the component's key: one editor on the page, whatever clip it shows
KEY = "editor"


@functools.cache
def _component() -> Callable[..., Any]:
    return st.components.v2.component("earmark_editor", js=asset("editor.js"),
                                      css=asset("editor.css"))


def editor(data: dict[str, Any], *, on_save: Callable[[], None], on_skip: Callable[[], None],
           on_alive: Callable[[], None], on_browser: Callable[[], None]) -> Any:
    """Mount the editor with ``data`` (:func:`earmark.review.editor.editor_data`).

    The callbacks run before the next run of the page, with the event's value in
    ``st.session_state[KEY]`` (``.save``, ``.skip``, ``.alive``; ``.browser`` is the
    state that says which browser this is).
    """
    return _component()(key=KEY, data=data, height="content", on_save_change=on_save,
                        on_skip_change=on_skip, on_alive_change=on_alive,
                        on_browser_change=on_browser)


def event(name: str) -> Any:
    """The value of the editor's ``name`` event in this run (None if it did not fire)."""
    state = st.session_state.get(KEY)
    return state.get(name) if state is not None else None
