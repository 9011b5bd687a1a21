"""The clip player of the review app as one self-contained HTML page.

An ``<audio>`` element fed by a ``data:`` URL, a replay button, a playback-speed menu,
and the hypothesis with one ``<span>`` per word: clicking a word plays just its span
(with a small margin, since word times are estimates), and low-confidence words stand
out by colour *and* underline and weight, so the cue survives colour blindness. The
probability of every word is in its tooltip. Pure string building: no Streamlit here.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence

from .review import Word

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
"""


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
                margin: float = 0.15) -> str:
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
    """
    src = "data:audio/wav;base64," + base64.b64encode(wav).decode("ascii")
    options = "".join(f'<option value="{s:g}"{" selected" if s == 1.0 else ""}>{s:g}×</option>'
                      for s in SPEEDS)
    spans = _word_spans(words, threshold) or "<i>(the model wrote no words for this clip)</i>"
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
<script>{_SCRIPT % {"margin": f"{margin:g}"}}</script>
</body></html>"""

