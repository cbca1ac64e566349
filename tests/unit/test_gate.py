"""The promotion gate's rule on recorded scores."""

from deepcast.pipelines.gate import decide


def test_gate_treats_float_noise_as_a_tie():
    # the replay's day 7: the same naive model, re-scored from its saved bundle
    promoted, reason = decide(1.1208474287597092, 1.120847428810307, "6", 0.0, 1.455)
    assert not promoted and "does not beat champion" in reason
    assert decide(1.1208, 1.120847428810307, "6", 0.0, 1.455)[0]
