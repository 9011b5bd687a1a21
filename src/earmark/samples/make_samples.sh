#!/usr/bin/env bash
# Regenerate the sample speech clips in src/earmark/samples/ from sentences.tsv.
#
# Usage (from anywhere):   bash src/earmark/samples/make_samples.sh
#
# Needs: espeak-ng, flite, sox (soxi), python3
#   Debian/Ubuntu: apt-get install -y espeak-ng flite sox
#
# Input:  src/earmark/samples/sentences.tsv   tab-separated, header "id voice text"
#           voice is "espeak-ng:<voice>" or "flite:<voice>".
#           Rows whose id starts with "long_dictation." are not written as
#           their own clips: they are joined, in file order, with 0.8 s of
#           silence between sentences into audio/long_dictation.wav.
# Output: src/earmark/samples/audio/<id>.wav  16 kHz, mono, 16-bit signed PCM WAV
#         src/earmark/samples/manifest.jsonl  {"audio": ..., "text": ..., "speaker": ...}
#
# The output is deterministic for a given set of tool versions (sox runs with
# dither disabled), so rerunning the script reproduces the same files.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

SENTENCES="sentences.tsv"
AUDIO_DIR="audio"
MANIFEST="manifest.jsonl"
LONG_ID="long_dictation"
EDGE_PAD_S="0.15"      # silence kept at both ends of every clip after trimming
LONG_GAP_S="0.8"       # total silence between two sentences of the long file
MIN_S="2"              # allowed clip length (short clips)
MAX_S="8"
LONG_MIN_S="45"        # allowed length of the long file
LONG_MAX_S="60"

for tool in espeak-ng flite sox soxi python3; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "error: '$tool' not found (apt-get install -y espeak-ng flite sox)" >&2
        exit 1
    }
done

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# Speaking rate (words per minute) for each espeak-ng voice; varied a little so
# the voices do not all sound alike. flite voices use their own default rate.
espeak_speed() {
    case "$1" in
        en-us)     echo 150 ;;
        en)        echo 160 ;;
        en+f3)     echo 145 ;;
        en-us+m3)  echo 165 ;;
        *)         echo 155 ;;
    esac
}

# synth VOICE TEXT OUT_WAV: raw synthesis at the engine's native format.
synth() {
    local voice="$1" text="$2" out="$3"
    case "$voice" in
        espeak-ng:*)
            local v="${voice#espeak-ng:}"
            # Text on stdin so that nothing in it is read as an option.
            printf '%s\n' "$text" | espeak-ng -v "$v" -s "$(espeak_speed "$v")" -w "$out" --stdin
            ;;
        flite:*)
            flite -voice "${voice#flite:}" -t "$text" -o "$out"
            ;;
        *)
            echo "error: unknown voice '$voice' (want espeak-ng:<v> or flite:<v>)" >&2
            exit 1
            ;;
    esac
}

# to_clip IN OUT: convert to 16 kHz mono 16-bit, trim leading and trailing
# silence (light: only near-silent samples, threshold 0.3 %), keep a short
# pad at each end and normalise the peak to -3 dBFS so that the two engines
# have similar loudness. -D turns off dither, which keeps the output
# byte-for-byte reproducible.
to_clip() {
    sox -D "$1" -r 16000 -c 1 -b 16 -e signed-integer "$2" \
        silence 1 0.05 0.3% reverse silence 1 0.05 0.3% reverse \
        rate -h 16000 norm -3 pad "$EDGE_PAD_S" "$EDGE_PAD_S"
}

# json_line AUDIO TEXT SPEAKER: print one manifest line (python3 does the escaping).
json_line() {
    python3 -c 'import json, sys
print(json.dumps({"audio": sys.argv[1], "text": sys.argv[2], "speaker": sys.argv[3]}, ensure_ascii=False))' \
        "$1" "$2" "$3"
}

mkdir -p "$AUDIO_DIR"
rm -f "$AUDIO_DIR"/*.wav      # start clean so no stale clips are left behind
: > "$TMP/manifest.jsonl"

long_parts=()                 # trimmed wavs of the long-dictation sentences
long_text=""
long_voice=""
n_clips=0

# Read the sentence list, skipping the header, blank lines and "#" comments.
while IFS=$'\t' read -r id voice text || [[ -n "${id:-}" ]]; do
    [[ -z "$id" || "$id" == "id" || "$id" == \#* ]] && continue
    if [[ -z "${voice:-}" || -z "${text:-}" ]]; then
        echo "error: malformed row for id '$id' in $SENTENCES" >&2
        exit 1
    fi
    synth "$voice" "$text" "$TMP/raw_$id.wav"
    if [[ "$id" == "$LONG_ID".* ]]; then
        to_clip "$TMP/raw_$id.wav" "$TMP/part_$id.wav"
        long_parts+=("$TMP/part_$id.wav")
        long_text="${long_text:+$long_text }$text"
        # speaker of the long file: its voice, or "mixed" if the rows differ
        if [[ -z "$long_voice" ]]; then long_voice="$voice"
        elif [[ "$long_voice" != "$voice" ]]; then long_voice="mixed"; fi
    else
        to_clip "$TMP/raw_$id.wav" "$AUDIO_DIR/$id.wav"
        json_line "$AUDIO_DIR/$id.wav" "$text" "$voice" >> "$TMP/manifest.jsonl"
        n_clips=$((n_clips + 1))
    fi
done < "$SENTENCES"

# Build the long file: part1, pause, part2, pause, ..., partN.
if (( ${#long_parts[@]} > 0 )); then
    # Each part already ends and starts with EDGE_PAD_S of silence, so the
    # inserted pause is LONG_GAP_S - 2 * EDGE_PAD_S (digital zero, no dither).
    pause_s="$(python3 -c "print(max(0.0, $LONG_GAP_S - 2 * $EDGE_PAD_S))")"
    sox -D -n -r 16000 -c 1 -b 16 -e signed-integer "$TMP/pause.wav" trim 0 "$pause_s"
    concat=()
    for i in "${!long_parts[@]}"; do
        (( i > 0 )) && concat+=("$TMP/pause.wav")
        concat+=("${long_parts[$i]}")
    done
    sox -D "${concat[@]}" "$AUDIO_DIR/$LONG_ID.wav"
    json_line "$AUDIO_DIR/$LONG_ID.wav" "$long_text" "$long_voice" >> "$TMP/manifest.jsonl"
fi

mv "$TMP/manifest.jsonl" "$MANIFEST"

# Check every duration; report all problems, then fail if there were any.
bad=0
total=0
for wav in "$AUDIO_DIR"/*.wav; do
    d="$(soxi -D "$wav")"
    total="$(python3 -c "print(round($total + $d, 2))")"
    if [[ "$(basename "$wav")" == "$LONG_ID.wav" ]]; then lo=$LONG_MIN_S; hi=$LONG_MAX_S; else lo=$MIN_S; hi=$MAX_S; fi
    if ! python3 -c "import sys; sys.exit(0 if $lo <= $d <= $hi else 1)"; then
        echo "warning: $wav is ${d}s, outside ${lo}-${hi}s" >&2
        bad=1
    fi
done

echo "wrote $n_clips clips$( (( ${#long_parts[@]} > 0 )) && echo " + $LONG_ID.wav"), total ${total}s, manifest: $MANIFEST"
exit "$bad"
