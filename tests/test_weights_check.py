"""The finiteness check every model load runs (its fast summing pass)."""

import torch

from earmark.models.loading import non_finite_weights


def test_the_summing_pass_neither_misses_nor_invents_bad_weights():
    ok = {"a": torch.randn(1000), "b": torch.randn(10, 10).half(), "n": torch.arange(5)}
    assert non_finite_weights(ok) == 0
    huge = {"w": torch.full((4,), 3e38)}  # finite, though their sum overflows float32
    assert non_finite_weights(huge) == 0
    bad = {"a": torch.tensor([1.0, float("nan"), float("inf"), -float("inf")]), "b": torch.ones(3)}
    assert non_finite_weights(bad) == 3
    assert non_finite_weights({"w": torch.tensor([7e4, 1.0])}, torch.float16) == 1  # inf in float16
