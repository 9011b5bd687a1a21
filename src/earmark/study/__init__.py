"""The review-cost study: the product's loop replayed on a large pool, with references as
the corrections, measured as the WER of the whole pool against review cost."""
