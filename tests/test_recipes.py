"""The main job's real-data recipes (test_networks.py's RECIPES), run end to end on small files
written in the exact published formats (IDX for MNIST and Fashion-MNIST, CIFAR-10's binary
batches, the Malaria cell_images folder): each loader, the preparation, the augmentation, the
schedule and the network of every recipe run, one epoch on the first samples (--samples), whether
or not the real files are here. The accuracies they reach on the real data: test_accuracy.py and
test_conv_accuracy.py (-m slow)."""
import argparse

import numpy as np
import pytest

import fastnn

import _datafiles
import _main_job

networks = _main_job.networks
IMAGE_RECIPES = [name for name, recipe in networks.RECIPES.items() if isinstance(recipe.data, networks.Images)]
SAMPLES = 96


def labelled_images(rng, n, shape, classes):
    """uint8 images whose mean brightness tells the class apart, and their labels."""
    labels = rng.integers(0, classes, n).astype(np.uint8)
    noise = rng.integers(0, 60, (n, *shape))
    images = (noise + (labels.reshape(-1, *[1] * len(shape)) * (180 // max(classes - 1, 1)))).clip(0, 255)
    return images.astype(np.uint8), labels


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """mnist/, fashion-mnist/, cifar-10-batches-bin/ and malaria/cell_images/ in one folder."""
    root = tmp_path_factory.mktemp("datasets")
    rng = np.random.default_rng(0)
    for folder in ("mnist", "fashion-mnist"):
        train = labelled_images(rng, 200, (28, 28), 10)
        test = labelled_images(rng, 100, (28, 28), 10)
        _datafiles.write_mnist(root / folder, (*train, *test))
    # CIFAR-10's format fixes 10000 records per file: the first records carry the signal.
    batches = []
    for _ in range(6):
        images, labels = np.zeros((10000, 32, 32, 3), np.uint8), np.zeros(10000, np.uint8)
        images[:SAMPLES], labels[:SAMPLES] = labelled_images(rng, SAMPLES, (32, 32, 3), 10)
        batches.append((images, labels))
    _datafiles.write_cifar_folder(root, batches)
    cells = {}
    for k, cls in enumerate(fastnn.datasets.MALARIA_CLASSES):
        sizes = [(40 + i % 7, 36 + i % 5) for i in range(60)]
        cells[cls] = [(f"C{k}_cell_{i}.png", (rng.integers(0, 80, (*size, 3)) + 150 * k).clip(0, 255).astype(np.uint8))
                      for i, size in enumerate(sizes)]
    _datafiles.write_malaria_folder(root / "malaria" / "cell_images", cells)
    return root


@pytest.mark.parametrize("name", IMAGE_RECIPES)
def test_recipe_runs_on_files_in_the_published_format(name, data_dir):
    recipe = networks.RECIPES[name]
    if recipe.data.loader == "load_malaria":
        pytest.importorskip("PIL")
    np.random.seed(0)
    args = argparse.Namespace(quick=False, data_dir=data_dir, epochs=2, samples=SAMPLES)
    result = networks.run(recipe, args, False)
    assert result.epochs == 2 and len(result.epoch_seconds) == 2
    assert 0 <= result.test_accuracy <= 1 and 0 <= result.train_accuracy <= 1
    # every data set keeps SAMPLES training samples (Malaria: 96 of its 120 cells in the 80/20 split)
    assert result.steps == 2 * (1 if recipe.batch_size is None else -(-SAMPLES // recipe.batch_size))


def test_the_tools_of_a_recipe_follow_its_fields():
    recipe = networks.Recipe("x", "x", networks.Iris(), networks.MLP((4, 3)), adam=(0.01, 0.0), epochs=3,
                             augment=(2, True), cosine=1)
    callbacks, augment = recipe.tools(3)
    assert isinstance(callbacks[0], fastnn.Schedule_Cosine) and callbacks[0].epochs == 3
    assert callbacks[0].warmup == 1
    assert isinstance(augment, fastnn.Augmentation_CropFlip) and (augment.padding, augment.flip) == (2, True)
    assert networks.RECIPES["iris"].tools(5) == ([], None)
    assert recipe.tools(1)[0][0].warmup == 0.5          # a 1-epoch run warms up for half of it


def test_a_scheduled_recipe_ends_below_its_starting_rate(data_dir):
    scheduled = [name for name in IMAGE_RECIPES if networks.RECIPES[name].cosine is not None]
    if not scheduled:
        pytest.skip("no recipe has a schedule")
    recipe = networks.RECIPES[scheduled[0]]
    np.random.seed(0)
    args = argparse.Namespace(quick=False, data_dir=data_dir, epochs=3, samples=SAMPLES)
    (X, y), _ = recipe.data.load(args, recipe.network)
    model = recipe.build()
    callbacks, augment = recipe.tools(3)
    history = model.train(X, y, epochs=3, batch_size=recipe.batch_size, verbose="silent", callbacks=callbacks,
                          augment=augment)
    assert history.learning_rate[-1] < recipe.adam[0] == history.learning_rate[0]
