"""Writers of the published data-set file formats, written from the format descriptions (not with
fastnn.datasets' code): IDX (MNIST, Fashion-MNIST), CIFAR-10's binary batches, and the Malaria
cell_images folder and zip. Shared by the loader tests (test_datasets_loaders.py,
test_datasets_images.py) and the recipe smoke tests (test_recipes.py)."""
import gzip
import io
import pathlib
import struct
import zipfile

import numpy as np

MNIST_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
CIFAR_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
RECORD = 3073                 # a CIFAR-10 record: the label byte, then 3 x 32 x 32 pixel bytes


def idx_bytes(array, type_code=0x08, big_endian_dtype=">u1"):
    """An IDX file: zero bytes, the type code, the rank, big-endian sizes, then the data."""
    array = np.asarray(array)
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(struct.pack(">I", n) for n in array.shape)
    return header + array.astype(big_endian_dtype).tobytes()


def write_mnist(folder, arrays, *, compressed=(True, True, True, True), raw_overrides=None):
    """Write the four files into folder; raw_overrides maps a file name to the exact bytes to store."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, array, gz in zip(MNIST_NAMES, arrays, compressed):
        data = (raw_overrides or {}).get(name, idx_bytes(array))
        if gz:
            (folder / name).write_bytes(gzip.compress(data, mtime=0))
        else:
            (folder / name[:-3]).write_bytes(data)
    return folder


def cifar_batch_bytes(images, labels):
    """A batch file of (10000, 32, 32, 3) HWC images: per record the label, then the R, G and B
    planes row-major."""
    records = np.empty((len(labels), RECORD), dtype=np.uint8)
    records[:, 0] = labels
    for channel in range(3):
        records[:, 1 + 1024 * channel:1 + 1024 * (channel + 1)] = images[:, :, :, channel].reshape(len(labels), 1024)
    return records.tobytes()


def write_cifar_folder(root, batches):
    """root/cifar-10-batches-bin/ with the six files, from six (images HWC, labels) pairs."""
    folder = pathlib.Path(root) / "cifar-10-batches-bin"
    folder.mkdir(parents=True, exist_ok=True)
    for name, (images, labels) in zip(CIFAR_FILES, batches):
        (folder / name).write_bytes(cifar_batch_bytes(images, labels))
    return root


def save_image(path, array, fmt=None, **options):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, fmt, **options)
    return array


def png_bytes(array):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def write_malaria_folder(folder, images):
    """folder/<class>/<name>.png from {class: [(name, HWC array)]}, with the Thumbs.db files of
    the official archive."""
    for cls, items in images.items():
        for name, array in items:
            save_image(folder / cls / name, array)
        (folder / cls / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0 windows thumbnail cache")


def write_malaria_zip(path, images, prefix="cell_images/"):
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(prefix, b"")
        for cls, items in images.items():
            archive.writestr(f"{prefix}{cls}/", b"")
            for name, array in items:
                archive.writestr(f"{prefix}{cls}/{name}", png_bytes(array))
            archive.writestr(f"{prefix}{cls}/Thumbs.db", b"\xd0\xcf\x11\xe0")
            archive.writestr(f"__MACOSX/{prefix}{cls}/._x.png", b"resource fork")
