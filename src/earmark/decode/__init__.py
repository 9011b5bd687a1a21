"""Batched scored decoding (:mod:`.decoder`): packing short clips into shared windows
(:mod:`.packing`), the arithmetic it runs in (:mod:`.precision`), the loop rules
(:mod:`.repetition`) and the word-alignment path (:mod:`.dtw`)."""
