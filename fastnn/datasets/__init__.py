"""Datasets: the book's generators (identical to ``nnfs.datasets``) and loaders for real datasets.

Generators (NumPy's global RNG, nnfs's order; the same arrays whether or not ``nnfs.init()`` ran)::

    spiral_data(samples, classes)  vertical_data(samples, classes)  sine_data(samples=1000)

Loaders:

- ``load_iris()``: shipped inside the package.
- ``load_mnist()``, ``load_fashion_mnist()``: the official IDX files.
- ``load_cifar10()``: the official binary version (never the pickle version).
- ``load_image_folder(path)``: one sub-folder of PNG/JPEG images per class (needs Pillow, the
  ``images`` extra); ``load_malaria()`` is built on it.

Where files are looked for, in order: the ``data_home`` argument, the ``FASTNN_DATA`` environment
variable, the user cache folder (``get_data_home()`` tells which). A dataset found nowhere raises
``DatasetNotFoundError`` (a ``FileNotFoundError``) naming every place looked and how to get the files.
Nothing is downloaded unless a loader is called with ``download=True``; downloads come from the official
locations in ``BASE_URLS`` (change it to use a mirror), are checked against the pinned sha256 in
``CHECKSUMS``, and are written atomically.
"""
from __future__ import annotations

from .._shadowed import refuse_namespace_parent

refuse_namespace_parent()  # a clear error when a clone of the repository hides the package

from ._cifar import CIFAR10_CLASSES, load_cifar10
from ._download import BASE_URLS, CHECKSUMS, DownloadError
from ._generators import sine_data, spiral_data, vertical_data
from ._images import MALARIA_CLASSES, load_image_folder, load_malaria
from ._iris import IRIS_CLASSES, IRIS_FEATURES, load_iris
from ._mnist import FASHION_MNIST_CLASSES, load_fashion_mnist, load_mnist
from ._paths import ENV_VAR, DatasetNotFoundError, get_data_home, user_cache_dir

__all__ = [
    "spiral_data", "vertical_data", "sine_data",
    "load_iris", "IRIS_CLASSES", "IRIS_FEATURES",
    "load_mnist", "load_fashion_mnist", "FASHION_MNIST_CLASSES",
    "load_cifar10", "CIFAR10_CLASSES",
    "load_image_folder", "load_malaria", "MALARIA_CLASSES",
    "get_data_home", "user_cache_dir", "ENV_VAR",
    "DatasetNotFoundError", "DownloadError", "BASE_URLS", "CHECKSUMS",
]
