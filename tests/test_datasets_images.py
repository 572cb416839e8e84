"""load_image_folder and load_malaria on small PNG/JPEG folders and zips written by the tests."""
import io
import sys
import zipfile

import numpy as np
import pytest

from fastnn.datasets import MALARIA_CLASSES, load_image_folder, load_malaria

Image = pytest.importorskip("PIL.Image")

from _datafiles import png_bytes, save_image as save, write_malaria_folder, write_malaria_zip  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_places(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("FASTNN_DATA", raising=False)


@pytest.fixture
def rgb_folder(tmp_path, rng):
    """cat/ (3 images) and dog/ (2 images), 5x4 RGB PNGs; returns root and {class: [arrays by name]}."""
    root = tmp_path / "pets"
    images = {}
    for cls, count in (("dog", 2), ("cat", 3)):
        images[cls] = [save(root / cls / f"img{i}.png", rng.integers(0, 256, (5, 4, 3), dtype=np.uint8))
                       for i in range(count)]
    return root, images


def test_rgb_png_round_trip_nchw(rgb_folder):
    root, images = rgb_folder
    X, y, names = load_image_folder(root)
    assert names == ["cat", "dog"]
    assert X.shape == (5, 3, 5, 4) and X.dtype == np.uint8 and X.flags.c_contiguous
    assert y.dtype == np.uint8 and y.tolist() == [0, 0, 0, 1, 1]
    expected = np.stack(images["cat"] + images["dog"]).transpose(0, 3, 1, 2)
    assert np.array_equal(X, expected)


def test_rgb_png_round_trip_nhwc(rgb_folder):
    root, images = rgb_folder
    X, y, names = load_image_folder(str(root), layout="NHWC")
    assert X.shape == (5, 5, 4, 3) and X.flags.c_contiguous
    assert np.array_equal(X, np.stack(images["cat"] + images["dog"]))


def test_grayscale_png(tmp_path, rng):
    arrays = [save(tmp_path / "g" / "a" / f"{i}.png", rng.integers(0, 256, (6, 7), dtype=np.uint8)) for i in range(2)]
    X, y, _ = load_image_folder(tmp_path / "g", color_mode="grayscale")
    assert X.shape == (2, 1, 6, 7) and np.array_equal(X[:, 0], np.stack(arrays))
    X, _, _ = load_image_folder(tmp_path / "g", color_mode="grayscale", layout="NHWC")
    assert X.shape == (2, 6, 7, 1) and np.array_equal(X[..., 0], np.stack(arrays))
    X, _, _ = load_image_folder(tmp_path / "g")  # grayscale stored, RGB asked: the value in every channel
    assert X.shape == (2, 3, 6, 7) and all(np.array_equal(X[:, c], np.stack(arrays)) for c in range(3))


def test_rgb_to_grayscale_is_luma(rgb_folder):
    root, images = rgb_folder
    X, _, _ = load_image_folder(root, color_mode="grayscale")
    rgb = np.stack(images["cat"] + images["dog"]).astype(np.float64)
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    assert np.abs(X[:, 0].astype(np.float64) - luma).max() <= 1.0


def test_jpeg_images(tmp_path, rng):
    smooth = np.linspace(0, 255, 16 * 16 * 3).reshape(16, 16, 3).astype(np.uint8)
    save(tmp_path / "j" / "x" / "a.jpg", smooth, quality=95)
    save(tmp_path / "j" / "x" / "b.JPEG", smooth[::-1].copy(), "JPEG", quality=95)
    save(tmp_path / "j" / "y" / "c.Png", smooth)
    X, y, names = load_image_folder(tmp_path / "j", layout="NHWC")
    assert names == ["x", "y"] and y.tolist() == [0, 0, 1]
    with Image.open(tmp_path / "j" / "x" / "a.jpg") as decoded:
        assert np.array_equal(X[0], np.asarray(decoded.convert("RGB")))
    assert np.abs(X[0].astype(int) - smooth).mean() < 3  # JPEG is lossy, but close
    assert np.array_equal(X[2], smooth)


def test_resizing(tmp_path, rng):
    big = save(tmp_path / "r" / "a" / "big.png", rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
    small = save(tmp_path / "r" / "b" / "small.png", rng.integers(0, 256, (4, 3, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="differ in size") as info:
        load_image_folder(tmp_path / "r")
    assert "big.png" in str(info.value) and "small.png" in str(info.value) and "image_size" in str(info.value)
    X, y, _ = load_image_folder(tmp_path / "r", image_size=(8, 6))
    assert X.shape == (2, 3, 8, 6)
    expected = [np.asarray(Image.fromarray(a).resize((6, 8), Image.Resampling.BILINEAR)) for a in (big, small)]
    assert np.array_equal(X, np.stack(expected).transpose(0, 3, 1, 2))
    square, _, _ = load_image_folder(tmp_path / "r", image_size=8)  # one int: a square
    assert np.array_equal(square, load_image_folder(tmp_path / "r", image_size=(8, 8))[0])
    assert square.shape == (2, 3, 8, 8)
    X, _, _ = load_image_folder(tmp_path / "r", image_size=(4, 3), color_mode="grayscale")
    assert X.shape == (2, 1, 4, 3)
    assert np.array_equal(X[1, 0], np.asarray(Image.fromarray(small).convert("L")))  # already that size


def test_book_fashion_mnist_png_layout(tmp_path, rng):
    """fashion_mnist_images/train/<label>/*.png, labels as the folder numbers; 10 and 11 sort after 9."""
    root = tmp_path / "fashion_mnist_images" / "train"
    expected = {}
    for label in range(12):
        expected[label] = [save(root / str(label) / f"{i:04d}.png", rng.integers(0, 256, (28, 28), dtype=np.uint8))
                           for i in range(2)]
    X, y, names = load_image_folder(root, color_mode="grayscale")
    assert names == [str(i) for i in range(12)]
    assert X.shape == (24, 1, 28, 28) and y.tolist() == [label for label in range(12) for _ in range(2)]
    assert np.array_equal(X[:, 0], np.stack([a for label in range(12) for a in expected[label]]))


def test_many_classes_get_uint16_labels(tmp_path):
    pixel = np.zeros((1, 1, 3), dtype=np.uint8)
    for k in range(257):
        save(tmp_path / "many" / f"c{k:03d}" / "x.png", pixel)
    X, y, names = load_image_folder(tmp_path / "many")
    assert y.dtype == np.uint16 and y[-1] == 256 and len(names) == 257 and X.shape == (257, 3, 1, 1)


def test_special_modes_16bit_and_alpha(tmp_path):
    deep = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    (tmp_path / "m" / "a").mkdir(parents=True)
    (tmp_path / "deep.png").rename(tmp_path / "m" / "a" / "deep.png")
    X, _, _ = load_image_folder(tmp_path / "m", color_mode="grayscale")
    assert np.array_equal(X[0, 0], (deep >> 8).astype(np.uint8))  # top 8 bits, not clipped at 255
    rgba = np.dstack([np.full((3, 4, 3), 77, np.uint8), np.zeros((3, 4), np.uint8)])
    save(tmp_path / "m2" / "a" / "rgba.png", rgba)
    X, _, _ = load_image_folder(tmp_path / "m2")
    assert np.all(X == 77)  # alpha dropped


def test_ignored_files_and_folders(rgb_folder):
    root, images = rgb_folder
    (root / "README.txt").write_text("files next to the class folders are ignored")
    (root / "cat" / "Thumbs.db").write_bytes(b"\0junk")
    (root / "cat" / ".DS_Store").write_bytes(b"\0junk")
    (root / "cat" / ".hidden.png").write_bytes(b"not an image")
    (root / ".git").mkdir()
    (root / ".git" / "x.png").write_bytes(b"not an image")
    X, y, names = load_image_folder(root)
    assert names == ["cat", "dog"] and X.shape[0] == 5


def test_nested_folders_inside_a_class_are_read(rgb_folder, rng):
    root, images = rgb_folder
    last = save(root / "dog" / "sub" / "zz.png", rng.integers(0, 256, (5, 4, 3), dtype=np.uint8))
    first = save(root / "dog" / "a_sub" / "first.png", rng.integers(0, 256, (5, 4, 3), dtype=np.uint8))
    X, y, _ = load_image_folder(root, layout="NHWC")
    assert y.tolist() == [0, 0, 0, 1, 1, 1, 1]
    # sorted by path within the class: a_sub/first.png, img0.png, img1.png, sub/zz.png
    assert np.array_equal(X[3:], np.stack([first, *images["dog"], last]))


@pytest.mark.parametrize("name,content", [
    ("notes.txt", b"a stray text file"),
    ("fake.png", b"a text file with an image name"),
    ("broken.png", None),   # a real PNG, truncated
    ("broken.jpg", "jpeg"),  # a real JPEG, truncated
])
def test_unreadable_files_raise_or_are_skipped(rgb_folder, name, content):
    root, images = rgb_folder
    if content is None:
        content = png_bytes(images["cat"][0])[:40]
    elif content == "jpeg":
        buffer = io.BytesIO()
        Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 100).save(buffer, "JPEG")
        content = buffer.getvalue()[:200]
    (root / "dog" / name).write_bytes(content)
    with pytest.raises(ValueError) as info:
        load_image_folder(root)
    assert str(root / "dog" / name) in str(info.value) and "on_error='skip'" in str(info.value)
    with pytest.warns(UserWarning, match="skipped 1 files") as record:
        X, y, names = load_image_folder(root, on_error="skip")
    assert name in str(record[0].message)
    assert X.shape == (5, 3, 5, 4) and y.tolist() == [0, 0, 0, 1, 1]
    assert np.array_equal(X, np.stack(images["cat"] + images["dog"]).transpose(0, 3, 1, 2))


def test_structural_errors(tmp_path, rgb_folder):
    root, _ = rgb_folder
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_image_folder(tmp_path / "nope")
    with pytest.raises(NotADirectoryError):
        load_image_folder(root / "cat" / "img0.png")
    (tmp_path / "flat").mkdir()
    save(tmp_path / "flat" / "a.png", np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match="no class sub-folders"):
        load_image_folder(tmp_path / "flat")
    (root / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no PNG or JPEG") as info:
        load_image_folder(root)
    assert str(root / "empty") in str(info.value)


@pytest.mark.parametrize("kwargs,error,word", [
    ({"image_size": (0, 3)}, ValueError, "image_size"), ({"image_size": (3,)}, TypeError, "image_size"),
    ({"image_size": "ab"}, TypeError, "image_size"), ({"image_size": (2.5, 3)}, TypeError, "image_size"),
    ({"image_size": 0}, ValueError, "image_size"), ({"image_size": True}, TypeError, "image_size"),
    ({"image_size": 2.0}, TypeError, "image_size"), ({"color_mode": "RGB"}, ValueError, "color_mode"),
    ({"layout": "nchw"}, ValueError, "layout"), ({"on_error": "ignore"}, ValueError, "on_error"),
])
def test_image_arguments_are_checked(rgb_folder, kwargs, error, word):
    root, _ = rgb_folder
    with pytest.raises(error, match=word):
        load_image_folder(root, **kwargs)


def test_path_argument_is_checked():
    with pytest.raises(TypeError, match="path"):
        load_image_folder(None)
    with pytest.raises(TypeError, match="path"):
        load_image_folder(3)


def test_missing_pillow_says_how_to_install(rgb_folder, monkeypatch):
    root, _ = rgb_folder
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r'pip install "fastnn\[images\]"'):
        load_image_folder(root)


# ---------------------------------------------------------------------------------------------- Malaria

@pytest.fixture
def malaria_images(rng):
    """Cells of differing sizes, as in the real dataset: {class: [(name, array)]}."""
    return {cls: [(f"C{k}_cell_{i}.png", rng.integers(0, 256, (10 + i + k, 12 - i, 3), dtype=np.uint8))
                  for i in range(3)] for k, cls in enumerate(MALARIA_CLASSES)}


def expected_malaria(images, size):
    arrays = [np.asarray(Image.fromarray(a).resize((size[1], size[0]), Image.Resampling.BILINEAR))
              for cls in MALARIA_CLASSES for _, a in images[cls]]
    return np.stack(arrays).transpose(0, 3, 1, 2)


@pytest.mark.parametrize("layout", ["malaria/cell_images", "cell_images"])
def test_malaria_from_folder(tmp_path, malaria_images, layout):
    write_malaria_folder(tmp_path / layout, malaria_images)
    X, y, names = load_malaria(tmp_path, image_size=(8, 9))
    assert names == ["Parasitized", "Uninfected"] and y.dtype == np.uint8 and y.tolist() == [0, 0, 0, 1, 1, 1]
    assert X.shape == (6, 3, 8, 9) and X.dtype == np.uint8
    assert np.array_equal(X, expected_malaria(malaria_images, (8, 9)))
    square, _, _ = load_malaria(tmp_path, image_size=7)
    assert square.shape == (6, 3, 7, 7) and np.array_equal(square, expected_malaria(malaria_images, (7, 7)))


@pytest.mark.parametrize("where", ["malaria/cell_images.zip", "cell_images.zip"])
def test_malaria_from_zip_is_read_without_extracting(tmp_path, malaria_images, where):
    write_malaria_zip(tmp_path / where, malaria_images)
    before = sorted(tmp_path.rglob("*"))
    X, y, names = load_malaria(tmp_path)
    assert sorted(tmp_path.rglob("*")) == before
    assert X.shape == (6, 3, 64, 64) and y.tolist() == [0, 0, 0, 1, 1, 1]
    assert np.array_equal(X, expected_malaria(malaria_images, (64, 64)))


def test_malaria_default_size_and_fastnn_data(tmp_path, malaria_images, monkeypatch):
    write_malaria_folder(tmp_path / "env" / "malaria" / "cell_images", malaria_images)
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "env"))
    X, _, _ = load_malaria()
    assert X.shape == (6, 3, 64, 64)
    with pytest.raises(ValueError, match="differ in size"):
        load_malaria(image_size=None)


def test_malaria_wrong_classes(tmp_path, malaria_images):
    write_malaria_folder(tmp_path / "cell_images", malaria_images)
    save(tmp_path / "cell_images" / "Other" / "x.png", np.zeros((3, 3, 3), np.uint8))
    with pytest.raises(ValueError, match="expected exactly the class folders"):
        load_malaria(tmp_path)


def test_malaria_damaged_zip_and_member(tmp_path, malaria_images):
    path = tmp_path / "cell_images.zip"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="not a zip") as info:
        load_malaria(tmp_path)
    assert str(path) in str(info.value)
    malaria_images["Uninfected"].append(("bad.png", None))
    with zipfile.ZipFile(path, "w") as archive:
        for cls, items in malaria_images.items():
            for name, array in items:
                archive.writestr(f"cell_images/{cls}/{name}", b"garbage" if array is None else png_bytes(array))
    with pytest.raises(ValueError, match="member cell_images/Uninfected/bad.png"):
        load_malaria(tmp_path)


def test_threaded_decoding_gives_the_sequential_result(tmp_path, rng, monkeypatch):
    import fastnn.datasets._images as images_module

    root = tmp_path / "many-images"
    arrays = {}
    for k in range(3):
        for i in range(70):
            arrays[(k, i)] = save(root / f"class{k}" / f"{i:03d}.png", rng.integers(0, 256, (4, 5, 3), dtype=np.uint8))
    (root / "class1" / "050.png").write_bytes(b"corrupt")
    results = {}
    for threads in (1, 4):
        monkeypatch.setattr(images_module, "_MAX_THREADS", threads)
        with pytest.raises(ValueError, match="050.png"):
            load_image_folder(root)
        with pytest.warns(UserWarning, match="skipped 1 files"):
            results[threads] = load_image_folder(root, on_error="skip", layout="NHWC")
    X, y, names = results[4]
    assert np.array_equal(X, results[1][0]) and np.array_equal(y, results[1][1])
    kept = [key for key in sorted(arrays) if key != (1, 50)]
    assert X.shape == (209, 4, 5, 3) and np.array_equal(X, np.stack([arrays[key] for key in kept]))
    assert y.tolist() == [k for k, _ in kept]
