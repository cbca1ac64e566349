"""The convergence verdict of a fit, by hand: stopped by max_epochs while the monitored
loss was still falling is 'not converged'; early stopping, or a curve gone flat, is."""

import pytest

from deepcast.forecasting.convergence import convergence


@pytest.mark.parametrize("history, max_epochs, converged", [
    ({}, 5, None),  # a baseline: nothing trained
    ({"loss": [3.0, 2.0, 1.0]}, 3, False),  # no validation: training loss still falling
    ({"loss": [3, 2, 1], "val_loss": [3.0, 2.0, 1.5]}, 3, False),  # best is the last
    ({"loss": [3, 2, 1, 1], "val_loss": [3.0, 2.0, 1.0, 1.2]}, 4, False),  # best at -2
    ({"loss": [3, 2, 1, 1], "val_loss": [3.0, 1.0, 1.4, 1.2]}, 4, False),  # last improved
    ({"loss": [3, 2, 1, 1, 1], "val_loss": [3.0, 1.0, 1.4, 1.5, 1.6]}, 5, True),  # flat
    ({"loss": [3, 2, 1], "val_loss": [3.0, 2.0, 2.5]}, 9, True),  # early stopping
    ({"loss": [1.0]}, 1, False),  # max_epochs: 1
])
def test_convergence_by_hand(history, max_epochs, converged):
    verdict = convergence(history, max_epochs)
    assert verdict.converged is converged
    if converged is False:
        assert f"max_epochs={max_epochs}" in verdict.reason
        assert "raise training.max_epochs" in verdict.reason
