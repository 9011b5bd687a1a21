"""The clip player of the review app as one self-contained HTML page.

An ``<audio>`` element fed by a ``data:`` URL, a replay button, a playback-speed menu,
and the hypothesis with one ``<span>`` per word: clicking a word plays just its span
(with a small margin, since word times are estimates), and low-confidence words stand
out by colour *and* underline and weight, so the cue survives colour blindness. The
probability of every word is in its tooltip.

It also keeps the annotator's unsaved text. The review page's transcript box sits in a
form, so nothing typed reaches the server before a save; a reload, a closed tab or a
lost connection would lose it. With a :class:`Draft`, every keystroke in that box is
kept in the browser's ``localStorage`` and put back when the same clip, in the same
state, is shown again. Pure string building: no Streamlit here.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from earmark.review.items import Word

#: playback speeds offered, as multiples of real time
SPEEDS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)

_STYLE = """
body { font-family: "Source Sans Pro", "Source Sans 3", sans-serif; margin: 0; color: #262730; }
.bar { display: flex; gap: .6rem; align-items: center; flex-wrap: wrap; margin-bottom: .5rem; }
audio { height: 36px; flex: 1 1 300px; }
button, select { font: inherit; font-size: .9rem; padding: .2rem .6rem; border-radius: .4rem;
  border: 1px solid #c9cbd3; background: #fff; cursor: pointer; }
.words { font-size: 1.3rem; line-height: 2.2rem; }
.w { cursor: pointer; padding: 1px 2px; border-radius: 4px; }
.w:hover { background: #e6ecfb; }
.low { color: #c62828; font-weight: 700; text-decoration: underline 2px; text-underline-offset: 4px; }
.now { background: #fff1a8; }
.legend { font-size: .8rem; color: #6b6f7b; margin-top: .3rem; }
.restored { font-size: .85rem; color: #1b5e20; margin-top: .3rem; }
"""

_SCRIPT = """
const audio = document.getElementById("audio");
const speed = document.getElementById("speed");
const words = Array.from(document.querySelectorAll(".w"));
const MARGIN = %(margin)s;
let stopAt = null;
function mark() {
  const t = audio.currentTime;
  for (const w of words) w.classList.toggle("now", t >= +w.dataset.start && t < +w.dataset.end);
}
function tick() {
  // timeupdate fires only ~4 times a second: too coarse to stop at the end of one word
  if (stopAt !== null && audio.currentTime >= stopAt) { audio.pause(); stopAt = null; }
  mark();
  if (!audio.paused) requestAnimationFrame(tick);
}
audio.addEventListener("play", () => requestAnimationFrame(tick));
audio.addEventListener("seeked", mark);
speed.addEventListener("change", () => { audio.playbackRate = +speed.value; });
document.getElementById("replay").addEventListener("click", () => {
  stopAt = null; audio.currentTime = 0; audio.playbackRate = +speed.value; audio.play();
});
for (const w of words) w.addEventListener("click", () => {
  audio.currentTime = Math.max(0, +w.dataset.start - MARGIN);
  stopAt = +w.dataset.end + MARGIN;
  audio.playbackRate = +speed.value;
  audio.play();
});

// The draft keeper. This page is a same-origin frame of the review page (srcdoc), so it
// can watch the page's transcript box; a browser that forbids that simply keeps no draft.
const DRAFT = %(draft)s;
function keepDraft(d) {
  const doc = window.parent.document, store = window.parent.localStorage;
  const boxSelector = `textarea[aria-label="${CSS.escape(d.box)}"]`;
  const saved = (() => {
    try { const v = JSON.parse(store.getItem(d.key)); return v && v.tag === d.tag ? v.text : null; }
    catch (e) { return null; }
  })();
  // one entry per project and annotator, overwritten by the next clip's first keystroke,
  // so drafts never pile up; the tag ties it to one clip as one state of it was shown
  const onInput = (e) => {
    if (e.target.matches && e.target.matches(boxSelector))
      store.setItem(d.key, JSON.stringify({tag: d.tag, text: e.target.value}));
  };
  doc.addEventListener("input", onInput, true);
  // a listener must not outlive its frame (the next clip's page replaces it)
  window.addEventListener("pagehide", () => doc.removeEventListener("input", onInput, true));
  if (saved === null) return;
  let tries = 0;
  const restore = () => {
    const box = doc.querySelector(boxSelector);
    if (!box) { if (++tries < 300) setTimeout(restore, 100); return; }  // up to 30 s
    if (box.value === saved) return;
    // set it as typing would, so the page's own state (and so the save) gets the text
    const setter = Object.getOwnPropertyDescriptor(window.parent.HTMLTextAreaElement.prototype, "value").set;
    setter.call(box, saved);
    box.dispatchEvent(new Event("input", {bubbles: true}));
    document.getElementById("restored").hidden = false;
  };
  restore();
}
if (DRAFT) { try { keepDraft(DRAFT); } catch (e) { /* no access: no draft */ } }
"""


@dataclass(frozen=True)
class Draft:
    """Where the player keeps the text typed into the page's transcript box.

    Attributes
    ----------
    key
        The ``localStorage`` key: one per project and annotator.
    tag
        What the text was typed against (the clip and the newest correction shown): a
        draft is put back only when the page shows the same tag again, so a text typed
        before someone else saved the clip never silently returns over theirs.
    box
        The accessible label of the page's transcript box.
    """

    key: str
    tag: str
    box: str


def _word_spans(words: Sequence[Word], threshold: float) -> str:
    parts = []
    for i, w in enumerate(words):
        core = w.text.strip()
        if not core:
            continue
        # keep the model's own spacing: a piece like "-ktrak's" joins the word before it
        lead = " " if w.text[:1].isspace() and parts else ""
        cls = "w low" if w.p < threshold else "w"
        parts.append(f'{lead}<span class="{cls}" id="w{i}" data-start="{w.start:.3f}" '
                     f'data-end="{w.end:.3f}" title="p={w.p:.2f}">{html.escape(core)}</span>')
    return "".join(parts)


def player_html(wav: bytes, words: Sequence[Word], threshold: float, *,
                margin: float = 0.15, draft: Draft | None = None) -> str:
    """The player page for one clip.

    Parameters
    ----------
    wav
        The clip as a WAV file.
    words
        The hypothesis, word by word, with times in seconds.
    threshold
        Words with probability below this are marked low-confidence.
    margin
        Seconds played before and after a clicked word.
    draft
        Keep the text typed into the page's transcript box, and put it back on a reload
        (None: keep nothing).
    """
    src = "data:audio/wav;base64," + base64.b64encode(wav).decode("ascii")
    options = "".join(f'<option value="{s:g}"{" selected" if s == 1.0 else ""}>{s:g}×</option>'
                      for s in SPEEDS)
    spans = _word_spans(words, threshold) or "<i>(the model wrote no words for this clip)</i>"
    # "</" must not end the script early, whatever the project's path holds
    draft_js = json.dumps(asdict(draft) if draft else None).replace("</", "<\\/")
    return f"""<!doctype html><html><head><meta charset="utf-8"><style>{_STYLE}</style></head>
<body>
<div class="bar">
  <audio id="audio" controls preload="auto" src="{src}"></audio>
  <button id="replay" title="Play the whole clip again from the start">⟲ Replay</button>
  <label>Speed <select id="speed" title="Playback speed">{options}</select></label>
</div>
<div class="words" id="words">{spans}</div>
<div class="legend"><span class="low">red, bold, underlined</span>: the model's confidence is
below {threshold:g} · hover a word for its probability · click it to hear just that word</div>
<div class="restored" id="restored" hidden>✎ Your unsaved text of this clip is back in the box.</div>
<script>{_SCRIPT % {"margin": f"{margin:g}", "draft": draft_js}}</script>
</body></html>"""

