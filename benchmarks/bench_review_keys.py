"""Keys and seconds a keyboard-only annotator spends per clip in the review editor.

Makes a project of the shipped clips (``src/earmark/samples/``, whose references play the
annotator's ears), serves it with ``earmark review``, and in headless Chromium corrects
five clips with the keyboard alone, once with autoplay off and once with it on. Per
clip the annotator

1. hears the clip once (autoplay, else the play key) and waits for its end;
2. reaches the first hypothesis word the reference does not have: with the next
   low-confidence word key when that word is marked (the editor opens with the first
   marked word selected), else from the start word by word (Ctrl+Home, Ctrl+Right...,
   Ctrl+Shift+Right to select it);
3. selects from there to the end (Shift+End) and types the reference from the aligned
   word on (the edit itself);
4. saves (Ctrl+Enter).

``overhead_keys_per_clip`` counts the keys of 1, 2 and 4 (the issue's "hear the clip
once, reach the first wrong word and save"); the Shift+End of the edit is reported apart
(``edit_keys_per_clip``), the typed characters too. ``keys_per_uncertain_word`` is the
keys per move to the next low-confidence word, where each move is checked: the word is
selected and its span plays. ``seconds_save_to_next`` is the median, in the page, from
the save key to the next clip's editor ready with the cursor in it.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_review_keys.py [--clips 5]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from earmark.review.server import wait_until_serving

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "src" / "earmark" / "samples"
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         # a clip plays on open only after a first gesture on a real page; the test has none
         "--autoplay-policy=no-user-gesture-required"]
SHOT_ON_FAILURE = REPO / "test-output" / "browser" / "review_keys_failure.png"
CLIPS = ("s01", "s02", "s05", "s07", "s08", "s10", "s12")

#: the editor's state as the page holds it (its shadow root is open)
STATE_JS = """() => {
  const host = document.querySelector('[data-testid="stBidiComponentIsolated"]');
  const h = host && host.shadowRoot, root = h && h.querySelector('.em');
  if (!root) return null;
  const ed = h.querySelector('.ed'), a = h.querySelector('audio'), sel = h.getSelection();
  const spans = [...ed.querySelectorAll('span.w')];
  const at = sel.rangeCount ? spans.findIndex(s => s.contains(sel.anchorNode)) : -1;
  return {clip: +root.dataset.clip, ready: root.dataset.ready === '1',
          focused: h.activeElement === ed, text: ed.textContent, selected: sel.toString(),
          at, words: spans.map(s => ({t: s.textContent, low: s.classList.contains('low'),
                                      s: +s.dataset.s, e: +s.dataset.e})),
          paused: a.paused, time: a.currentTime, ended: a.ended, rate: a.playbackRate,
          overlay: (h.querySelector('.overlay') || {}).textContent || null,
          now: spans.findIndex(s => s.classList.contains('now'))};
}"""


def _key(word: str) -> str:
    core = re.sub(r"^\W+|\W+$", "", word.lower())
    return core or word.lower()


def make_project(base: Path, clips: tuple[str, ...] = CLIPS) -> tuple[Path, dict[str, str]]:
    """A ranked project of shipped clips: (its root, reference text by file name)."""
    rows = [json.loads(line) for line in (SAMPLES / "manifest.jsonl").read_text().splitlines()]
    rows = [r for r in rows if Path(r["audio"]).stem in clips]
    manifest = base / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({**r, "audio": str(SAMPLES / r["audio"])}) + "\n"
                                for r in rows))
    root = base / "proj"
    for args in (["init", str(root)], ["import", str(root), str(manifest), "--quiet"],
                 ["rank", str(root), "--quiet"]):
        subprocess.run([sys.executable, "-m", "earmark.cli", *args], check=True,
                       capture_output=True, text=True, env=_env())
    return root, {Path(r["audio"]).name: r["text"] for r in rows}


def set_review(root: Path, **settings: object) -> None:
    """Change ``review.*`` settings in the project's ``earmark.json``."""
    path = root / "earmark.json"
    cfg = json.loads(path.read_text())
    cfg.setdefault("review", {}).update(settings)
    path.write_text(json.dumps(cfg, indent=2))


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), *sys.path])}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(root: Path, log: Path) -> Iterator[str]:
    """``earmark review ROOT`` on a free loopback port; its URL while it runs."""
    port = free_port()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "earmark.cli", "review", str(root),
                                 "--port", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, env=_env())
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_until_serving(url, proc):
            raise RuntimeError(f"the review app did not start:\n{log.read_text()}")
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # earmark stops its Streamlit child
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def open_review(browser, url: str, name: str):
    """A page (of a Browser or a BrowserContext) on the review app signed in as ``name``, its first clip's editor ready."""
    # a Browser takes the page's size here, a BrowserContext (its own storage) had it given
    size = {"viewport": {"width": 1100, "height": 860}} if hasattr(browser, "new_context") else {}
    page = browser.new_page(**size)
    page.goto(f"{url}/?annotator={name}")
    wait_ready(page)
    return page


def state(page) -> dict | None:
    return page.evaluate(STATE_JS)


def wait_ready(page, after: int | None = None, timeout: float = 60) -> dict:
    """Wait until the editor shows a clip (another than ``after``) with the cursor in it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = state(page)
        if s and s["ready"] and s["focused"] and s["clip"] != after:
            return s
        page.wait_for_timeout(50)
    raise TimeoutError(f"no editor ready within {timeout} s (after clip {after})")


def wait_heard(page, timeout: float = 30) -> None:
    """Wait until the clip has played to its end (or stopped)."""
    page.wait_for_function(
        """() => { const a = document.querySelector('[data-testid="stBidiComponentIsolated"]')
                   .shadowRoot.querySelector('audio'); return a.ended || (a.paused && a.currentTime > 0); }""",
        timeout=timeout * 1000)


class Keys:
    """Presses keys on a page and counts them."""

    def __init__(self, page):
        self.page, self.count = page, 0

    def press(self, key: str, times: int = 1) -> None:
        for _ in range(times):
            self.page.keyboard.press(key)
            self.count += 1


def check_hop(page, before: dict, keys: Keys, key: str = "Tab") -> bool:
    """Press the next-uncertain key once; True when the next marked word is selected and
    its span plays (the move ``keys_per_uncertain_word`` counts)."""
    lows = [i for i, w in enumerate(before["words"]) if w["low"]]
    if key in ("Shift+Tab", "Control+ArrowUp"):  # the previous-word keys
        nxt = next((i for i in reversed(lows) if i < before["at"]), lows[-1])
    else:
        nxt = next((i for i in lows if i > before["at"]), lows[0])
    keys.press(key)
    page.wait_for_timeout(150)
    after = state(page)
    w = after["words"][nxt]
    return (after["at"] == nxt and after["selected"] == w["t"] and not after["paused"]
            and w["s"] - 0.3 <= after["time"] <= w["e"] + 0.3)


def hop_through(page, hops: dict) -> None:
    """Move through every marked word with the next key and back with the previous key,
    checking each move; not part of a clip's overhead (the editor ends where it began)."""
    lows = [i for i, w in enumerate(state(page)["words"]) if w["low"]]
    counter = Keys(page)
    for key in ["Tab"] * (len(lows) - 1) + ["Shift+Tab"] * (len(lows) - 1):
        before = state(page)
        hops["keys"] += 1
        hops["ok"] += check_hop(page, before, counter, key)


def correct_one(page, reference: str, autoplay: bool, measure_hops: bool = True) -> dict:
    """Correct the open clip to ``reference``: keys by kind, and what the text became."""
    s = wait_ready(page)
    keys, hops = Keys(page), {"keys": 0, "ok": 0}
    # 1. hear it once
    if not autoplay:
        keys.press("Escape")
    page.wait_for_timeout(200)
    playing = not state(page)["paused"] or state(page)["ended"]
    wait_heard(page)
    if measure_hops:
        hop_through(page, hops)
    # 2. reach the first wrong word
    hyp = [w["t"] for w in s["words"]]
    ref = reference.split()
    import jiwer

    chunks = jiwer.process_words(" ".join(map(_key, hyp)), " ".join(map(_key, ref))).alignments[0]
    wrong = next((c for c in chunks if c.type != "equal"), None)
    if wrong is None:  # nothing to correct: just save
        keys.press("Control+Enter")
        return {"overhead": keys.count, "edit_keys": 0, "chars": 0, "hops": hops, "reach": "none",
                "playing": playing, "expected": " ".join(hyp)}
    i, j = wrong.ref_start_idx, wrong.hyp_start_idx  # hypothesis word, reference word
    lows = [k for k, w in enumerate(s["words"]) if w["low"]]
    reach = "marked" if i < len(hyp) and i in lows else "word by word" if i < len(hyp) else "end"
    if i < len(hyp) and i in lows:
        for _ in range(lows.index(i)):  # the editor opened on the first marked word
            if not check_hop(page, state(page), keys):
                raise AssertionError("the next-uncertain key did not select and play the word")
    elif i < len(hyp):
        keys.press("Control+Home")
        keys.press("Control+ArrowRight", i)
        keys.press("Control+Shift+ArrowRight")
    else:  # the reference goes on after the last word
        keys.press("End")
    # 3. the edit: from there to the end, the reference's words
    edit_keys = 0
    if i < len(hyp):
        page.keyboard.press("Shift+End")
        edit_keys += 1
    # Ctrl+Right stops at a word's end on Linux, so the word-by-word selection starts with
    # the space before the word: the typed text puts it back, as a person seeing it would
    lead = i >= len(hyp) or state(page)["selected"][:1].isspace()
    typed = (" " if lead else "") + " ".join(ref[j:])
    page.keyboard.type(typed)
    expected = " ".join(hyp[:i] + ref[j:])
    # 4. save
    keys.press("Control+Enter")
    return {"overhead": keys.count, "edit_keys": edit_keys, "reach": reach,
            "chars": len(typed), "hops": hops, "playing": playing, "expected": expected}


def run_pass(browser, url: str, refs: dict[str, str], *, autoplay: bool, clips: int,
             name: str) -> dict:
    """Correct ``clips`` clips as ``name``; per-clip records and the save-to-next times."""
    page = open_review(browser, url, name)
    records, waits = [], []
    for _ in range(clips):
        s = wait_ready(page)
        clip_name = page.evaluate("""() => { const m = [...document.querySelectorAll('p')]
            .map(p => p.textContent).find(t => / · queue #/.test(t)); return m && m.split(' · ')[0]; }""")
        rec = correct_one(page, refs[clip_name], autoplay)
        try:
            nxt = wait_ready(page, after=s["clip"])
        except TimeoutError:
            page.screenshot(path=str(SHOT_ON_FAILURE))
            raise
        timing = page.evaluate("() => window.__earmarkTiming")
        waits.append((timing["ready"] - timing["save"]) / 1000)
        records.append({**rec, "clip": s["clip"], "name": clip_name, "next": nxt["clip"]})
        page.evaluate("() => { window.__earmarkTiming = null; }")
    page.close()
    return {"records": records, "waits": waits}


def summarize(off: dict, on: dict) -> dict:
    """The figures of the two passes (autoplay off, on)."""
    def per_clip(p: dict, key: str) -> float:
        return statistics.mean(r[key] for r in p["records"])

    hops = [r["hops"] for p in (off, on) for r in p["records"]]
    hop_keys, hop_ok = sum(h["keys"] for h in hops), sum(h["ok"] for h in hops)
    waits = off["waits"] + on["waits"]
    return {
        "overhead_keys_per_clip": per_clip(off, "overhead"),
        "overhead_keys_per_clip_autoplay": per_clip(on, "overhead"),
        "overhead_keys_per_clip_median": statistics.median(r["overhead"] for r in off["records"]),
        "overhead_keys_per_clip_autoplay_median": statistics.median(r["overhead"] for r in on["records"]),
        # clips whose first wrong word the model was sure of: reached word by word
        "clips_first_error_unmarked": sum(r["reach"] == "word by word" for r in off["records"]),
        "edit_keys_per_clip": per_clip(off, "edit_keys"),
        "chars_typed_per_clip": per_clip(off, "chars"),
        "keys_per_uncertain_word": hop_keys / hop_ok if hop_ok else None,
        "uncertain_word_moves_checked": hop_ok,
        "uncertain_word_moves_failed": hop_keys - hop_ok,
        "seconds_save_to_next": statistics.median(waits),
        "seconds_save_to_next_max": max(waits),
        "clips_per_pass": len(off["records"]),
    }


def measure(base: Path, clips: int = 5, log_dir: Path | None = None) -> tuple[dict, Path, list]:
    """Both passes on fresh projects under ``base``: (figures, last project, records)."""
    from playwright.sync_api import sync_playwright

    log_dir = log_dir or base
    passes, last = [], base
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        for autoplay in (False, True):
            (base / str(autoplay)).mkdir(parents=True, exist_ok=True)
            root, refs = make_project(base / str(autoplay))
            set_review(root, autoplay=autoplay)
            with serve(root, log_dir / f"review_keys_app_{autoplay}.log") as url:
                passes.append(run_pass(browser, url, refs, autoplay=autoplay, clips=clips,
                                       name="bench"))
            last = root
        browser.close()
    return summarize(*passes), last, passes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=5, help="clips corrected per pass (default 5)")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from common import write_result

    with tempfile.TemporaryDirectory() as tmp:
        figures, _, passes = measure(Path(tmp), args.clips)
    for p in passes:
        for r in p["records"]:
            print(json.dumps({k: v for k, v in r.items() if k != "expected"}))
    print(json.dumps(figures, indent=2))
    print(write_result("review_keys", figures))


if __name__ == "__main__":
    main()
