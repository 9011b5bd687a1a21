"""End to end in a real browser: `earmark review` serves the app on loopback, headless
Chromium (Debian's, driven by Playwright) types a correction into the review editor and
saves it from the keyboard, and the correction is read back from the project database.
(Every key of the editor: ``test_editor_keys.py``.)

A screenshot of the review page is written to ``test-output/browser/review.png``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from earmark.review.server import wait_until_serving

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "src" / "earmark" / "samples"
OUT = REPO / "test-output" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
EARMARK = Path(sys.executable).with_name("earmark")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.browser, pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="needs Debian's chromium at /usr/bin/chromium (`make browser-deps`)"),
]


def earmark(*args: str) -> None:
    subprocess.run([str(EARMARK), *args], check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def project_root(tmp_path_factory) -> Path:
    """A project made with the earmark command itself: init, import three clips, rank."""
    base = tmp_path_factory.mktemp("browser")
    rows = [json.loads(line) for line in (SAMPLES / "manifest.jsonl").read_text().splitlines()]
    manifest = base / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({**r, "audio": str(SAMPLES / r["audio"])}) + "\n"
                                for r in rows if Path(r["audio"]).stem in ("s07", "s12", "s17")))
    root = base / "proj"
    earmark("init", str(root))
    earmark("import", str(root), str(manifest), "--quiet")
    earmark("rank", str(root), "--quiet")
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def app_url(project_root):
    """`earmark review` on a free loopback port; stopped (with its Streamlit child) after."""
    port = free_port()
    log = (OUT / "app.log")
    OUT.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        # its own process group, so the Streamlit child is stopped with it
        proc = subprocess.Popen([str(EARMARK), "review", str(project_root), "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    if not wait_until_serving(url, proc):
        os.killpg(proc.pid, signal.SIGTERM)
        pytest.fail(f"the review app did not start:\n{log.read_text()}")
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


def start_reviewing(pw, app_url: str, name: str):
    """A headless browser on the review page, signed in as ``name``: (browser, page, transcript box)."""
    browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
    page = browser.new_page(viewport={"width": 1200, "height": 820})
    page.goto(app_url)
    page.get_by_role("textbox", name="Your name").fill(name)
    page.get_by_role("button", name="Start reviewing").click()
    return browser, page, page.get_by_role("textbox", name="Transcript")


def retype(box, text: str) -> None:
    """Replace the editor's text by typing (the cursor is in it when a clip opens)."""
    box.press("Control+a")
    box.page.keyboard.type(text)


def test_type_a_correction_and_save_it_from_the_keyboard(app_url, project_root):
    from playwright.sync_api import expect, sync_playwright

    from earmark.store.project import open_project
    from earmark.review.reports import queue

    first = queue(open_project(project_root), top=1)[0]
    with sync_playwright() as pw:
        browser, page, box = start_reviewing(pw, app_url, "ada")
        expect(box).to_have_text(first.text.strip(), timeout=60_000)
        expect(box).to_be_focused()  # the cursor is in the text when the clip opens

        # the hypothesis in the text: low-confidence words by colour and underline, p on hover
        low = box.locator(".w.low").first
        expect(low).to_have_attribute("title", re.compile(r"^p=0\.\d\d$"))
        assert "underline" in low.evaluate("e => getComputedStyle(e).textDecorationLine")
        page.wait_for_timeout(500)  # let the fonts settle for the picture
        page.screenshot(path=str(OUT / "review.png"))

        retype(box, "The pharmacist flagged warfarin and fluconazole.")
        box.press("Control+Enter")
        expect(page.get_by_text(f"Saved {first.name}")).to_be_visible(timeout=60_000)
        browser.close()

    project = open_project(project_root)
    (row,) = project.store.latest_corrections()
    assert (row.clip_id, row.text, row.annotator) == (
        first.clip_id, "The pharmacist flagged warfarin and fluconazole.", "ada")
    assert row.hypothesis == first.text.strip() and row.seconds_spent > 0


def test_a_reload_keeps_the_name_and_hands_back_the_same_clip(app_url, project_root):
    from playwright.sync_api import expect, sync_playwright
    from sqlalchemy import select

    from earmark.store.project import open_project
    from earmark.store.db import Lease

    def held_by_bob() -> list[int]:
        project = open_project(project_root)
        try:
            with project.store.session() as s:
                return list(s.scalars(select(Lease.clip_id).where(Lease.annotator.like("bob#%"))))
        finally:
            project.store.dispose()

    with sync_playwright() as pw:
        browser, page, box = start_reviewing(pw, app_url, "bob")
        expect(box).to_be_visible(timeout=60_000)
        expect(page).to_have_url(re.compile(r"[?&]annotator=bob\b"), timeout=10_000)
        first = box.text_content()
        (clip,) = held_by_bob()

        page.reload()
        box = page.get_by_role("textbox", name="Transcript")
        expect(box).to_have_text(first, timeout=60_000)
        expect(page.get_by_text("Annotating as bob")).to_be_visible()
        assert page.get_by_role("textbox", name="Your name").count() == 0
        browser.close()
    assert held_by_bob() == [clip]  # the reloaded page holds the same clip, and only it


def test_text_typed_but_not_saved_survives_a_reload_and_is_what_gets_saved(app_url, project_root):
    from playwright.sync_api import expect, sync_playwright

    from earmark.store.project import open_project

    typed = "Half of a correction, typed and not yet saved"
    with sync_playwright() as pw:
        # ada's earlier tab (the first test) left a clip leased to her: this one gets it
        browser, page, box = start_reviewing(pw, app_url, "ada")
        expect(box).to_be_visible(timeout=60_000)
        hypothesis = box.text_content()
        assert hypothesis != typed
        retype(box, typed)  # nothing of this reaches the server before a save

        page.reload()
        box = page.get_by_role("textbox", name="Transcript")
        expect(box).to_have_text(typed, timeout=60_000)
        expect(page.get_by_text("Your unsaved text of this clip is back")).to_be_visible()

        box.press("Control+Enter")
        expect(page.get_by_text(re.compile(r"^Saved "))).to_be_visible(timeout=60_000)
        browser.close()

    project = open_project(project_root)
    try:
        saved = {c.text: c for c in project.store.latest_corrections()}
    finally:
        project.store.dispose()
    assert typed in saved and saved[typed].hypothesis == hypothesis
