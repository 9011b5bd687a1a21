"""Dashboard: how labeling goes, how the models do, and whether the ranking finds the
clips that need work."""

from __future__ import annotations

import altair as alt
import earmark_ui as ui
import pandas as pd
import streamlit as st

from earmark.review import charts, dashboard, pace

from earmark.review import workflow as review


def figure(title: str, frame: pd.DataFrame, empty: str, chart: alt.Chart,
           caption: str | None = None) -> None:
    """A figure under its title, or while ``frame`` is empty, what to do to fill it."""
    st.subheader(title)
    if frame.empty:
        st.info(empty)
        return
    st.altair_chart(chart)
    if caption:
        st.caption(caption)


st.set_page_config(page_title="earmark · Dashboard", page_icon="📈", layout="wide")
proj = ui.project()
st.title("Dashboard")

with ui.shown_errors():
    labeled = dashboard.labeled_over_time(proj)
    wer = dashboard.model_wer(proj)
    versions = dashboard.model_versions(proj)
    scores = dashboard.score_distribution(proj)
    bands = dashboard.edit_rate_by_band(proj)
    rates = dashboard.annotator_rates(proj)
    per_clip = dashboard.edit_rates(proj)
    marks = pace.work_with_and_without_marks(proj)

#: how times read on every chart: UTC, 24-hour clock
WHEN = "%Y-%m-%d %H:%M"

m = st.columns(4)
m[0].metric("Clips corrected", len(labeled))
m[1].metric("Labeled audio", f"{labeled['minutes'].iloc[-1] if len(labeled) else 0:.1f} min")
m[2].metric("Clips scored", len(scores))
m[3].metric("Annotators", len(rates))

left, right = st.columns(2)
with left:
    figure("Labeled audio over time", labeled, "No corrections yet: save one on the Review page.",
           alt.Chart(labeled).mark_line(interpolate="step-after", point=True).encode(
               x=alt.X("time:T", title="time (UTC)", scale=alt.Scale(type="utc"),
                       axis=alt.Axis(format="%d %b %H:%M", labelAngle=0)),
               y=alt.Y("minutes:Q", title="labeled audio (min)"),
               tooltip=[alt.Tooltip("utcyearmonthdatehoursminutes(time):T", title="time (UTC)",
                                    format=WHEN),
                        alt.Tooltip("clips:Q", title="clips corrected"),
                        alt.Tooltip("minutes:Q", title="labeled audio (min)", format=".2f")]))
    figure("Distribution of clip scores", scores, f"No scores yet: run `earmark rank {proj.root}`.",
           alt.Chart(scores).mark_bar().encode(
               # round bin edges (steps of 1, 2 or 5 times a power of ten), at most 20 bars
               x=alt.X("score:Q", title=f"score ({review.score_name(proj)})",
                       bin=alt.Bin(step=charts.readable_step(scores["score"].min(),
                                                             scores["score"].max())
                                   if len(scores) else 1.0)),
               y=alt.Y("count():Q", title="clips"),
               color=alt.Color("status:N", scale=alt.Scale(
                   domain=list(dashboard.STATUSES),
                   range=["#9aa5b8", "#f2a516", "#2e9e5b", "#c62828", "#d5d8de"])),
               tooltip=[alt.Tooltip("status:N", title="status"),
                        alt.Tooltip("score:Q", bin=True, title="score from", format=".2f"),
                        alt.Tooltip("count():Q", title="clips")]),
           caption="Higher scores are reviewed first.")
    # corrections saved by a script (no open-clip time) give no rate
    timed = rates.dropna(subset=["clips_per_hour"])
    figure("Clips per hour, per annotator", timed,
           "No reviews yet." if rates.empty else "No review times recorded yet: the rates come from "
           "clips corrected on the Review page.",
           alt.Chart(timed).mark_bar().encode(
               x=alt.X("clips_per_hour:Q", title="clips per hour the clip was open"),
               y=alt.Y("annotator:N", sort="-x", title=None),
               tooltip=[alt.Tooltip("annotator:N", title="annotator"),
                        alt.Tooltip("clips:Q", title="clips"),
                        alt.Tooltip("hours:Q", title="hours open", format=".2f"),
                        alt.Tooltip("clips_per_hour:Q", title="clips per hour", format=".0f")]))

with right:
    figure("WER of each model version", wer,
           f"No model has been evaluated yet: fine-tuning records it (`earmark round {proj.root}`).",
           alt.Chart(wer).mark_bar().encode(
               x=alt.X("model:N", sort=alt.EncodingSortField("order", op="min"), title="model version"),
               xOffset="dev_set:N",
               y=alt.Y("wer:Q", title="WER", axis=alt.Axis(format="%")),
               color=alt.Color("dev_set:N", title="dev clips held out by"),
               tooltip=[alt.Tooltip("model:N", title="model version"),
                        alt.Tooltip("dev_set:N", title="dev clips held out by"),
                        alt.Tooltip("wer:Q", title="WER", format=".1%")]),
           caption="Each fine-tune measures its parent and itself on the clips it held out.")
    figure("How much annotators changed the hypotheses", bands, "No corrections of scored clips yet.",
           alt.Chart(bands).mark_bar().encode(
               x=alt.X("band:N", sort=None, title="score band (low → high)"),
               y=alt.Y("edit_rate:Q", title="word edit rate", axis=alt.Axis(format="%")),
               tooltip=[alt.Tooltip("band:N", title="score band"),
                        alt.Tooltip("clips:Q", title="clips"),
                        alt.Tooltip("edit_rate:Q", title="word edit rate", format=".1%")]),
           caption="Words changed per corrected word. If the ranking finds the clips that "
                   "need work, the bars rise from left to right.")
    odd = per_clip[charts.implausible(per_clip)] if len(per_clip) else per_clip
    if len(odd):
        st.warning(f"**{len(odd)} implausible correction{'' if len(odd) == 1 else 's'}**: the text "
                   f"has more than {charts.IMPLAUSIBLE_RATIO:g} times the hypothesis's words "
                   f"(clip{'' if len(odd) == 1 else 's'} "
                   f"{', '.join(str(c) for c in odd['clip'])}), more likely pasted into the "
                   "wrong clip than a correction of it; the edit rates above count "
                   f"{'it' if len(odd) == 1 else 'them'}. Open them on the Browse page.",
                   icon="⚠️")
    figure("Seconds of work per minute of audio, with and without the marks", marks,
           "No timed corrections from the review editor yet (the comparison needs "
           "`review.unmarked_share` above 0 in earmark.json to have clips without marks).",
           alt.Chart(marks).mark_bar().encode(
               x=alt.X("band:N", sort=[b[2] for b in pace.BANDS], title="words the model was unsure of"),
               xOffset=alt.XOffset("marks:N", title="marks"),
               y=alt.Y("seconds_per_audio_minute:Q", title="seconds of work per minute of audio"),
               color=alt.Color("marks:N", title="low-confidence words",
                               scale=alt.Scale(domain=["marked", "unmarked"],
                                               range=["#c62828", "#8a94b8"])),
               row=alt.Row("annotator:N", title=None),
               tooltip=[alt.Tooltip("annotator:N", title="annotator"),
                        alt.Tooltip("band:N", title="unsure words"),
                        alt.Tooltip("marks:N", title="low-confidence words"),
                        alt.Tooltip("clips:Q", title="clips"),
                        alt.Tooltip("audio_minutes:Q", title="audio (min)", format=".2f"),
                        alt.Tooltip("seconds_per_audio_minute:Q",
                                    title="seconds per minute of audio", format=".0f")]
           ),
           caption="Per annotator and per share of unsure words in the hypothesis: clips shown "
                   "with their low-confidence words marked against clips shown without "
                   "(`review.unmarked_share`, chosen per clip). Lower is faster.")

if len(versions):
    st.subheader("Model versions")
    st.dataframe(versions, hide_index=True, column_config={
        "dev_wer_before": st.column_config.NumberColumn("parent's dev WER", format="%.3f"),
        "dev_wer_after": st.column_config.NumberColumn("dev WER", format="%.3f"),
        "forgetting": st.column_config.NumberColumn("forgetting check", format="%.3f"),
        "clips": st.column_config.NumberColumn("clips trained on")})
    st.caption("Forgetting check: the share of the parent's words a version changes on the "
               "uncorrected clips the parent was surest of (runs that measured it; some changes "
               "may be fixes, a high share is a sign of forgetting).")
