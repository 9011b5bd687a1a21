"""Drive the review editor (a ``st.components.v2`` component) from AppTest.

AppTest cannot run the editor's JavaScript; what reaches Python from it is a trigger
event (``save``, ``skip``, ``alive``) on the component's trigger widget, which these
helpers send exactly as the browser does: a JSON list of ``{"event", "value"}`` on the
widget named after the component's id. The keys themselves are tested in a real
browser (``tests/browser/test_editor_keys.py``).
"""

from __future__ import annotations

import json
from typing import Any

from streamlit.components.v2.bidi_component.main import _make_trigger_id


def editor(at) -> Any:
    """The editor element of the page (exactly one)."""
    (el,) = at.get("bidi_component")
    return el


def editor_data(at) -> dict[str, Any]:
    """What the page gave the editor (``earmark.review.editor.editor_data``)."""
    return json.loads(editor(at).proto.json)


def shown_clip(at) -> int:
    """The id of the clip the editor shows."""
    return int(editor_data(at)["clip"])


def fire(at, event: str, value: Any):
    """Send the editor's ``event`` with ``value`` and run the page, as the browser would."""
    states = at._tree.get_widget_states()  # the widgets' values as AppTest sends them
    ws = states.widgets.add()
    ws.id = _make_trigger_id(editor(at).proto.id, "events")
    ws.json_trigger_value = json.dumps([{"event": event, "value": value}])
    return at._run(states)


def save(at, text: str, **work: Any):
    """Save ``text`` from the editor, with the timing the editor would send."""
    data = editor_data(at)
    payload = {"clip": data["clip"], "tag": data["tag"], "text": text, "marks": data["marks"],
               "listen_s": 3.5, "edit_s": 2.0, "open_s": 7.0, **work}
    return fire(at, "save", payload)


def skip(at):
    data = editor_data(at)
    return fire(at, "skip", {"clip": data["clip"], "tag": data["tag"]})


def in_browser(at, browser: str):
    """Say which browser the page is in, as the editor does on mount, and run the page."""
    states = at._tree.get_widget_states()
    ws = states.widgets.add()
    ws.id = editor(at).proto.id
    ws.json_value = json.dumps({"browser": browser})
    return at._run(states)
