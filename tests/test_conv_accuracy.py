"""Slow accuracy runs of fastnn's convolutional layers on real data (``pytest -m slow``): the main
job's CNN recipes with a test-accuracy target (test_networks.py's RECIPES: MNIST >= 0.99 in 4
epochs, Fashion-MNIST >= 0.91 in 8 with dropout 0.25; with the training tools (batch
normalisation, augmented batches, a cosine schedule) MNIST >= 0.994 in 12 epochs and
Fashion-MNIST >= 0.93 in 20), run as the main job runs them, on the 2-core reference machine.
Skipped when ../shared/datasets is absent.

The per-epoch times are printed (``-s`` shows them) and attached to the test report.
"""
import pytest

import _main_job


@pytest.mark.slow
@pytest.mark.parametrize("name", _main_job.with_threshold(_main_job.networks.CNN))
def test_cnn_reaches_its_accuracy(name, request, record_property):
    _main_job.reaches_threshold(name, request, record_property)
