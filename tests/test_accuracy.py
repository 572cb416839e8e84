"""The accuracies test_networks.py's recipes reach, asserted in slow runs.

    python -m pytest -m slow tests/test_accuracy.py

The MLP recipes with a test-accuracy target (Iris, MNIST, Fashion-MNIST: the entries of the main
job's RECIPES table with a threshold) must reach it on their held-out test sets. The spiral
recipes are compared with fastnn.reference running the identical recipe: a single long float32
run is chaotic (tests/test_chapters.py measured a per-run spread of 0.03-0.06 between two
implementations that differ only in the last bits), so the comparison is of the mean test accuracy
over several seeds, which has no systematic gap when the arithmetic is right.
"""
import numpy as np
import pytest

import fastnn
import fastnn.reference

import _main_job

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", _main_job.with_threshold(_main_job.networks.MLP))
def test_mlp_recipe_reaches_its_target(name, request, record_property):
    _main_job.reaches_threshold(name, request, record_property)


def _mean_gap(name, seeds, **kwargs):
    ours = [_main_job.run(name, library=fastnn, seed=seed, **kwargs).test_accuracy for seed in seeds]
    theirs = [_main_job.run(name, library=fastnn.reference, seed=seed, **kwargs).test_accuracy for seed in seeds]
    print(f"{name}: fastnn {np.mean(ours):.4f}, reference {np.mean(theirs):.4f} over {len(seeds)} seeds")
    return abs(np.mean(ours) - np.mean(theirs))


def test_binary_spiral_matches_the_reference():
    # 40 seeds of the full 10,000-epoch Ch16 recipe: the standard error of the mean gap is about
    # 0.05 / sqrt(40) = 0.008, so 0.02 is 2.5 standard errors.
    assert _mean_gap("binary-spiral", range(40)) <= 0.02


def test_spiral_matches_the_reference():
    # The Ch18 model with the book's dropout masks (identical random draws in both libraries),
    # 1,500 epochs from 4 seeds (the reference needs about 50 ms an epoch here).
    previous = fastnn.dropout_mode()
    fastnn.init(random_seed=None, dropout_mode="book")
    try:
        assert _mean_gap("spiral", range(4), epochs=1500) <= 0.02
    finally:
        fastnn.init(random_seed=None, dropout_mode=previous)
