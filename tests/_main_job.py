"""The main job, test_networks.py at the repository root, as a module: the slow accuracy tests
(test_accuracy.py, test_conv_accuracy.py) run its recipes, so what they assert is what the main
job reaches. Importing this skips the importing test module where the script is not next to the
tests (an installed package's tests)."""
from __future__ import annotations

import argparse
import importlib.util
import pathlib
import sys

import numpy as np
import pytest

import fastnn

PATH = pathlib.Path(__file__).resolve().parents[1] / "test_networks.py"
_NAME = "test_networks_script"


def _load():
    if _NAME in sys.modules:
        return sys.modules[_NAME]
    if not PATH.is_file():
        pytest.skip(f"{PATH} is not next to the tests (installed package)", allow_module_level=True)
    spec = importlib.util.spec_from_file_location(_NAME, PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[_NAME] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


networks = _load()
RECIPES = networks.RECIPES


def with_threshold(network_kind) -> list[str]:
    """The names of the recipes whose network is a `network_kind` (networks.MLP or networks.CNN)
    and whose target is a test accuracy."""
    return [name for name, recipe in RECIPES.items()
            if recipe.threshold is not None and isinstance(recipe.network, network_kind)]


def run(name: str, *, library=fastnn, seed: int = 0, epochs: int | None = None, data_dir=None):
    """The main job's run of recipe `name` (never --quick) with its networks built from `library`,
    after np.random.seed(seed) as the main job seeds; a data set that is not found skips the test."""
    networks.use_library(library)
    np.random.seed(seed)
    try:
        return networks.run(RECIPES[name], argparse.Namespace(quick=False, data_dir=data_dir, epochs=epochs),
                            False)
    except networks.Skip as skip:
        pytest.skip(str(skip))
    finally:
        networks.use_library(fastnn)


def reaches_threshold(name: str, request, record_property):
    """Run recipe `name` as the main job does, its real data (if any) from the shared_datasets
    fixture's folder, record its accuracy and epoch times, and assert its threshold."""
    recipe = RECIPES[name]
    data_dir = request.getfixturevalue("shared_datasets") if isinstance(recipe.data, networks.Images) else None
    result = run(name, data_dir=data_dir)
    epoch_seconds = [round(s, 1) for s in result.epoch_seconds]
    record_property("test_accuracy", result.test_accuracy)
    record_property("epoch_seconds", epoch_seconds)
    print(f"\n{name} ({recipe.model}): test accuracy {result.test_accuracy:.4f} after {result.epochs} epochs "
          f"in {result.seconds:.1f} s" + (f"; epoch seconds {epoch_seconds}" if len(epoch_seconds) <= 20 else ""))
    assert result.test_accuracy >= recipe.threshold, result
