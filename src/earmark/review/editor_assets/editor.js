// The review editor: the clip's audio, its waveform and the editable transcript in one
// component, so that every key works while the cursor is in the text.
//
// Streamlit calls this function again on every rerun of the page (a keep-alive, a
// widget elsewhere); the editor is rebuilt only when the clip shown changes (its tag),
// so the text, the cursor and the playback survive reruns.

const RATES = [0.5, 0.75, 1, 1.25, 1.5, 2];
const MARGIN = 0.15; // seconds played around a word: word times are estimates

function parseKey(spec) {
  const parts = spec.split("+");
  let key = parts.pop();
  if (key === "" && parts.length) { parts.pop(); key = "+"; }
  const mods = new Set(parts.map((p) => p.toLowerCase()));
  key = key.toLowerCase() === "space" ? " " : key.toLowerCase();
  return { ctrl: mods.has("ctrl") || mods.has("cmd"), alt: mods.has("alt"),
           shift: mods.has("shift"), key };
}

function matches(k, e) {
  if (k.ctrl !== (e.ctrlKey || e.metaKey) || k.alt !== e.altKey) return false;
  // a symbol typed with Shift on some layouts ("?", "/") does not ask for Shift
  const symbol = k.key.length === 1 && !/[a-z0-9 ]/.test(k.key);
  if (!symbol && k.shift !== e.shiftKey) return false;
  const key = (e.key || "").toLowerCase();
  return key === k.key || (k.key === " " && e.code === "Space");
}

function esc(s) {
  return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
}

// the editor's own element(s) in the host (":scope" matches nothing in a shadow root)
function dropOwn(host) {
  Array.from(host.children).filter((e) => e.classList.contains("em")).forEach((e) => e.remove());
}

function build(host, data, api) {
  // the host also holds Streamlit's own wrapper with this component's CSS: keep it
  dropOwn(host);
  const root = document.createElement("div");
  root.className = "em";
  root.dataset.clip = String(data.clip);
  const keyList = (a) => (data.keys[a] || []).map((k) => `<kbd>${esc(k)}</kbd>`).join(" ");
  root.innerHTML = `
    <div class="bar">
      <button class="play" title="Play / pause">▶ Play</button>
      <span class="time">0.0 / ${data.duration.toFixed(1)} s</span>
      <span class="rate">1×</span>
      <span class="hint">${keyList("play_pause")} play · ${keyList("next_uncertain")} next unsure word ·
        ${keyList("save_next")} save · ${keyList("help")} all keys</span>
      <button class="helpbtn" title="Every key (${esc((data.keys.help || []).join(", "))})">?</button>
    </div>
    <canvas class="wave" aria-label="Waveform: click to play from there"></canvas>
    <div class="ed ${data.marks ? "marks" : ""}" contenteditable="true" role="textbox"
      aria-multiline="false" aria-label="Transcript" spellcheck="false"></div>
    <div class="legend"></div>
    <div class="note" hidden></div>
    <audio preload="auto"></audio>`;
  host.appendChild(root);
  const $ = (s) => root.querySelector(s);
  const audio = $("audio"), ed = $(".ed"), canvas = $("canvas"), note = $(".note");
  audio.src = data.audio;
  const keymap = Object.entries(data.keys).map(([action, specs]) => [action, specs.map(parseKey)]);
  const state = { tag: data.tag, attempt: data.attempt, stopAt: null, saving: false,
                  opened: performance.now(), firstEdit: null, lastEdit: null, listened: 0,
                  playingSince: null, timers: [], send: api.setTriggerValue };

  // --- the text: one span per hypothesis word, marked when unsure --------------------
  if (data.words.length) {
    for (const w of data.words) {
      if (w.lead) ed.appendChild(document.createTextNode(w.lead));
      const span = document.createElement("span");
      span.className = "w" + (w.low ? " low" : "");
      span.dataset.s = w.s; span.dataset.e = w.e; span.dataset.t = w.t;
      if (data.marks) span.title = `p=${w.p.toFixed(2)}`;
      span.textContent = w.t;
      ed.appendChild(span);
    }
  } else {
    ed.textContent = data.text;
  }
  $(".legend").innerHTML = data.marks && data.words.some((w) => w.low)
    ? `<span class="low">red, bold, wavy underline</span>: the model's confidence is below ${data.threshold} · ` +
      `${keyList("next_uncertain")} selects the next one and plays it`
    : "";
  const text = () => ed.textContent.replace(/\s+/g, " ").trim();
  const spans = () => Array.from(ed.querySelectorAll("span.w"));
  const lows = () => (data.marks ? Array.from(ed.querySelectorAll("span.w.low")) : []);

  // --- a draft survives a reload: kept in this browser until the next clip's first key
  const draft = data.draft;
  if (draft) {
    try {
      const saved = JSON.parse(localStorage.getItem(draft.key));
      if (saved && saved.tag === draft.tag && saved.text !== text()) {
        ed.textContent = saved.text;
        note.hidden = false;
        note.textContent = "✎ Your unsaved text of this clip is back in the box.";
      }
    } catch (e) { /* no storage: no draft */ }
  }

  // --- playback -------------------------------------------------------------------------
  const rateShown = $(".rate"), timeShown = $(".time"), playBtn = $(".play");
  function setRate(r) { audio.playbackRate = r; rateShown.textContent = `${r}×`; }
  function play(from, to) {
    if (from !== undefined) audio.currentTime = Math.max(0, from);
    state.stopAt = to === undefined ? null : to;
    audio.play().catch(() => {});
  }
  function playSpan(span) { play(+span.dataset.s - MARGIN, +span.dataset.e + MARGIN); }
  function tick() {
    // timeupdate fires ~4 times a second: too coarse to stop at the end of one word
    if (state.stopAt !== null && audio.currentTime >= state.stopAt) { audio.pause(); state.stopAt = null; }
    const t = audio.currentTime;
    for (const s of spans()) s.classList.toggle("now", t >= +s.dataset.s && t < +s.dataset.e && !audio.paused);
    timeShown.textContent = `${t.toFixed(1)} / ${data.duration.toFixed(1)} s`;
    draw();
    if (!audio.paused) requestAnimationFrame(tick);
  }
  audio.addEventListener("play", () => {
    state.playingSince = performance.now(); playBtn.textContent = "❚❚ Pause"; requestAnimationFrame(tick);
  });
  const stopped = () => {
    if (state.playingSince !== null) state.listened += (performance.now() - state.playingSince) / 1000;
    state.playingSince = null; playBtn.textContent = "▶ Play"; tick();
  };
  audio.addEventListener("pause", stopped);
  audio.addEventListener("ended", stopped);
  audio.addEventListener("seeked", tick);

  // --- the waveform: peaks from Python, word spans below, unsure ones in red ------------
  function draw() {
    const w = canvas.clientWidth || 600, h = canvas.clientHeight || 72, dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(w * dpr)) { canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr); }
    const g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const dur = data.duration || 1, wave = h - 14, mid = wave / 2;
    for (const x of data.wave_words) {
      const x0 = (x.s / dur) * w, x1 = Math.max(x0 + 1, (x.e / dur) * w);
      g.fillStyle = data.marks && x.low ? "rgba(198,40,40,.16)" : "rgba(60,90,200,.07)";
      g.fillRect(x0, 0, x1 - x0, wave);
      g.fillStyle = data.marks && x.low ? "#c62828" : "#8a94b8";
      g.fillRect(x0 + 1, h - 9, Math.max(1, x1 - x0 - 2), data.marks && x.low ? 7 : 4);
    }
    const n = data.peaks.length;
    g.fillStyle = "#4a5a8c";
    for (let i = 0; i < n; i++) {
      const [lo, hi] = data.peaks[i], x = (i / n) * w;
      g.fillRect(x, mid - hi * mid * 0.95, Math.max(1, w / n), Math.max(1, (hi - lo) * mid * 0.95));
    }
    const px = (audio.currentTime / dur) * w;
    g.fillStyle = "#ff4b4b";
    g.fillRect(px - 1, 0, 2, h);
  }
  canvas.addEventListener("mousedown", (e) => {
    e.preventDefault(); // the cursor stays in the text
    const r = canvas.getBoundingClientRect();
    play(((e.clientX - r.left) / r.width) * data.duration);
    ed.focus();
  });
  playBtn.addEventListener("mousedown", (e) => e.preventDefault());
  playBtn.addEventListener("click", () => actions.play_pause());

  // --- where the cursor is --------------------------------------------------------------
  const selection = () => (host.getSelection ? host.getSelection() : document.getSelection());
  function caretNode() {
    const sel = selection();
    return sel && sel.rangeCount && ed.contains(sel.anchorNode) ? sel.getRangeAt(0) : null;
  }
  function wordAtCaret() {
    const range = caretNode(), all = spans();
    if (!range) return all[0] || null;
    let last = null;
    for (const s of all) {
      if (s.contains(range.startContainer)) return s;
      const r = document.createRange(); r.selectNode(s);
      if (r.compareBoundaryPoints(Range.START_TO_START, range) <= 0) last = s;
    }
    return last || all[0] || null;
  }
  function selectSpan(span) {
    const sel = selection(), r = document.createRange();
    r.selectNodeContents(span);
    sel.removeAllRanges(); sel.addRange(r);
    span.scrollIntoView({ block: "nearest" });
  }
  function unsure(step) {
    const all = lows();
    if (!all.length) return false; // nothing marked: the key keeps its usual meaning
    const range = caretNode();
    let target = null;
    if (!range) target = step > 0 ? all[0] : all[all.length - 1];
    else {
      const inside = all.findIndex((s) => s.contains(range.startContainer));
      if (inside >= 0) target = all[(inside + step + all.length) % all.length];
      else {
        const after = (s) => { const r = document.createRange(); r.selectNode(s);
          return r.compareBoundaryPoints(Range.START_TO_START, range) > 0; };
        target = step > 0 ? (all.find(after) || all[0])
                          : ([...all].reverse().find((s) => !after(s)) || all[all.length - 1]);
      }
    }
    selectSpan(target);
    playSpan(target);
  }

  // --- the actions the keys do ----------------------------------------------------------
  const overlay = (html) => {
    const open = root.querySelector(".overlay");
    if (open) { open.remove(); if (open.dataset.html === html) { ed.focus(); return; } }
    const o = document.createElement("div");
    o.className = "overlay"; o.dataset.html = html; o.innerHTML = html;
    o.addEventListener("mousedown", (e) => { e.preventDefault(); o.remove(); ed.focus(); });
    root.appendChild(o);
  };
  const helpHtml = () => `<b>Keys</b> (they work while the cursor is in the text; any key or click closes this)
    <table>${Object.entries(data.labels).map(([a, l]) => `<tr><td>${keyList(a)}</td><td>${esc(l)}</td></tr>`).join("")}
    </table>`;
  const guideHtml = () => `<b>Guidelines</b> (${keyList("guidelines")} closes)<div class="guide">${
    esc(data.guidelines || "This project has no guidelines.md.")}</div>`;
  function work() {
    if (state.playingSince !== null) { state.listened += (performance.now() - state.playingSince) / 1000; state.playingSince = performance.now(); }
    return { clip: data.clip, tag: data.tag, text: text(), marks: !!data.marks,
             listen_s: +state.listened.toFixed(2),
             edit_s: state.firstEdit === null ? 0 : +((state.lastEdit - state.firstEdit) / 1000).toFixed(2),
             open_s: +((performance.now() - state.opened) / 1000).toFixed(2) };
  }
  const actions = {
    play_pause: () => (audio.paused ? play() : audio.pause()),
    back: () => { audio.currentTime = Math.max(0, audio.currentTime - data.jump); tick(); },
    forward: () => { audio.currentTime = Math.min(data.duration, audio.currentTime + data.jump); tick(); },
    slower: () => setRate(RATES[Math.max(0, RATES.indexOf(audio.playbackRate) - 1)] || 1),
    faster: () => setRate(RATES[Math.min(RATES.length - 1, RATES.indexOf(audio.playbackRate) + 1)] || 1),
    replay_word: () => { const s = wordAtCaret(); if (s) playSpan(s); else play(0); },
    next_uncertain: () => unsure(1),
    previous_uncertain: () => unsure(-1),
    save_next: () => {
      if (state.saving) return;
      state.saving = true; ed.classList.add("saving"); audio.pause();
      window.__earmarkTiming = { save: performance.now(), clip: data.clip };
      state.send("save", work());
    },
    skip: () => { if (state.saving) return; state.saving = true; audio.pause(); state.send("skip", work()); },
    guidelines: () => overlay(guideHtml()),
    help: () => overlay(helpHtml()),
  };
  const onKey = (e) => {
    const open = root.querySelector(".overlay");
    if (open && !e.ctrlKey && !e.metaKey && !e.altKey && !/^F\d+$/.test(e.key)) {
      e.preventDefault(); open.remove(); ed.focus(); return;
    }
    if (e.key === "?" && e.target !== ed) { e.preventDefault(); actions.help(); return; }
    for (const [action, keys] of keymap) {
      if (keys.some((k) => matches(k, e))) {
        if (open && action !== "help" && action !== "guidelines") open.remove();
        // an action that does nothing here (Tab without marked words) leaves the key alone,
        // so Tab still moves on from the editor
        if (actions[action]() === false) return;
        e.preventDefault(); e.stopPropagation();
        return;
      }
    }
    // one line of text: Enter adds no line, and no rich-text formatting keys
    if (e.target === ed && (e.key === "Enter" || ((e.ctrlKey || e.metaKey) && /^[biu]$/i.test(e.key)))) e.preventDefault();
  };
  root.addEventListener("keydown", onKey);
  ed.addEventListener("paste", (e) => {
    e.preventDefault();
    const t = (e.clipboardData || window.clipboardData).getData("text/plain").replace(/\s+/g, " ");
    document.execCommand("insertText", false, t);
  });
  // Text typed at a word's edge lands inside its span (the browser keeps the caret
  // there); words typed next to a marked word are moved out of it, so the mark stays on
  // the model's word alone while the annotator edits around it.
  function keepMarksOnWords() {
    const sel = selection(), range = sel && sel.rangeCount ? sel.getRangeAt(0) : null;
    for (const span of ed.querySelectorAll("span.w")) {
      const orig = span.dataset.t, t = span.textContent;
      if (t === orig || !/\s/.test(t)) continue;
      const after = t.startsWith(orig) ? t.slice(orig.length) : "";
      const before = !after && t.endsWith(orig) ? t.slice(0, t.length - orig.length) : "";
      if (!after && !before) continue; // the word itself was edited: its mark stays on it
      const caret = range && span.contains(range.startContainer) ? range.startOffset : -1;
      span.textContent = orig;
      const extra = document.createTextNode(after || before);
      let node = null, offset = 0;
      if (after) {
        span.after(extra);
        if (caret > orig.length) { node = extra; offset = caret - orig.length; }
      } else {
        span.before(extra);
        if (caret >= 0 && caret <= before.length) { node = extra; offset = caret; }
        else if (caret >= 0) { node = span.firstChild; offset = caret - before.length; }
      }
      if (node) { const r = document.createRange(); r.setStart(node, offset); r.collapse(true); sel.removeAllRanges(); sel.addRange(r); }
    }
  }
  ed.addEventListener("input", () => {
    keepMarksOnWords();
    const now = performance.now();
    if (state.firstEdit === null) state.firstEdit = now;
    state.lastEdit = now;
    if (draft) { try { localStorage.setItem(draft.key, JSON.stringify({ tag: draft.tag, text: text() })); } catch (e) {} }
  });

  // --- which browser this is (kept in its storage), so that another browser under the
  // same name is told; a reload or another tab of this browser is the same one
  let browserId = null;
  try {
    browserId = localStorage.getItem("earmark-browser");
    if (!browserId) { browserId = Math.random().toString(36).slice(2, 12); localStorage.setItem("earmark-browser", browserId); }
  } catch (e) { browserId = null; }
  if (browserId && !data.browser_known) api.setStateValue("browser", browserId);

  // --- the lease lives while the tab is open ---------------------------------------------
  if (data.keepalive > 0) state.timers.push(setInterval(() => state.send("alive", Date.now()), data.keepalive * 1000));

  // --- open: cursor in the text, on the first unsure word; play if asked --------------
  requestAnimationFrame(() => {
    ed.focus();
    const first = lows()[0];
    if (first && note.hidden) selectSpan(first);
    else { const sel = selection(), r = document.createRange(); r.selectNodeContents(ed); r.collapse(false); sel.removeAllRanges(); sel.addRange(r); }
    draw();
    if (data.autoplay) play(0);
    if (window.__earmarkTiming && window.__earmarkTiming.clip !== data.clip && !window.__earmarkTiming.ready) {
      window.__earmarkTiming.ready = performance.now();
      window.__earmarkTiming.next = data.clip;
    }
    root.dataset.ready = "1";
  });
  state.unblock = () => { state.saving = false; ed.classList.remove("saving"); ed.focus(); };
  state.cleanup = () => { state.timers.forEach(clearInterval); audio.pause(); };
  state.showGuidelines = data.show_guidelines;
  if (data.show_guidelines && data.guidelines) overlay(guideHtml());
  return state;
}

export default function (component) {
  const { data, parentElement: host } = component;
  const prev = host.__earmark;
  if (prev && prev.tag === data.tag) {
    prev.send = component.setTriggerValue;
    if (prev.attempt !== data.attempt) { prev.attempt = data.attempt; prev.unblock(); }
    return prev.cleanup;
  }
  if (prev) prev.cleanup();
  if (!data || !data.tag) { dropOwn(host); host.__earmark = null; return undefined; }
  const state = build(host, data, component);
  host.__earmark = state;
  return state.cleanup;
}
