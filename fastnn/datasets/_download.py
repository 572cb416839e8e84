"""Fetching official dataset files: only when a loader is called with download=True.

Each file is streamed into a temporary file in the destination folder while its sha256 is computed;
only when the byte count and the sha256 match the pinned values is it moved to its final name with
``os.replace`` (atomic on one file system). On any failure the temporary file is deleted, so nothing
partial or corrupt is ever left under the final name. urllib only; no extra dependency.

``BASE_URLS`` maps each dataset to its download locations, tried in order. Change it (or point it at a
local mirror) to download from elsewhere: the pinned checksums still apply.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import pathlib
import sys
import tempfile
import urllib.error
import urllib.request

from .._version import __version__

BASE_URLS: dict[str, tuple[str, ...]] = {
    # The files of yann.lecun.com/exdb/mnist, as mirrored by PyTorch (torchvision's first choice) and
    # by the Google CVDF bucket that TensorFlow Datasets uses.
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/"),
    # Zalando Research's official download location (named in the fashion-mnist README).
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    # Alex Krizhevsky's CIFAR page, "CIFAR-10 binary version (suitable for C programs)".
    "cifar-10": ("https://www.cs.toronto.edu/~kriz/",),
    # U.S. National Library of Medicine (NIH/NLM, Lister Hill Center), Malaria Datasets page.
    "malaria": ("https://data.lhncbc.nlm.nih.gov/public/Malaria/",),
}
"""Download locations per dataset, tried in order (a str or a tuple of str; each ends with '/')."""

CHECKSUMS: dict[str, dict[str, tuple[int, str]]] = {
    # (size in bytes, sha256): the official values, listed by the Fashion-MNIST README, torchvision (MD5)
    # and TensorFlow Datasets (sha256); the copies in shared/datasets match them byte for byte.
    "mnist": {
        "train-images-idx3-ubyte.gz": (9912422, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        "train-labels-idx1-ubyte.gz": (28881, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        "t10k-images-idx3-ubyte.gz": (1648877, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        "t10k-labels-idx1-ubyte.gz": (4542, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": (26421880, "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
        "train-labels-idx1-ubyte.gz": (29515, "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
        "t10k-images-idx3-ubyte.gz": (4422102, "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
        "t10k-labels-idx1-ubyte.gz": (5148, "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
    },
    # Size and sha256 as pinned by TensorFlow Datasets (url_checksums/cifar10.txt); the CIFAR page itself
    # publishes the MD5 c32a1d4ab5d03f1284b67883e8d87530 of the same 170052171-byte file.
    "cifar-10": {
        "cifar-10-binary.tar.gz": (170052171, "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"),
    },
    # Size and sha256 as pinned by TensorFlow Datasets (url_checksums/malaria.txt, for the NLM's
    # cell_images.zip; the NLM page publishes no checksum of its own).
    "malaria": {
        "cell_images.zip": (353452851, "0a949556b2414159b5100192609805376654c4266d8d187be9b1922fad43c668"),
    },
}
"""Pinned (size in bytes, sha256) of every file download=True fetches."""

DOWNLOAD_TIMEOUT = 60.0
"""Seconds a connection may stay silent (connect or read) before the download fails."""

_CHUNK = 1 << 20


class DownloadError(OSError):
    """A download failed (HTTP error, connection lost, wrong size or sha256); nothing was left under the final name."""


def mirrors(dataset: str) -> tuple[str, ...]:
    """The download locations of ``dataset`` from BASE_URLS, each ending with '/'."""
    bases = BASE_URLS[dataset]
    if isinstance(bases, str):
        bases = (bases,)
    return tuple(base if base.endswith("/") else base + "/" for base in bases)


def urls(dataset: str, filename: str) -> list[str]:
    return [base + filename for base in mirrors(dataset)]


def fetch(dataset: str, filename: str, folder: pathlib.Path) -> pathlib.Path:
    """Download ``filename`` of ``dataset`` into ``folder`` (created if needed), verified; returns its path.

    Tries each location of BASE_URLS[dataset] in turn; raises DownloadError listing every failure.
    """
    size, sha256 = CHECKSUMS[dataset][filename]
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    destination = folder / filename
    failures = []
    for url in urls(dataset, filename):
        try:
            _fetch_one(url, destination, size, sha256)
            return destination
        except DownloadError as exc:
            failures.append(str(exc))
    if len(failures) == 1:
        raise DownloadError(failures[0])
    raise DownloadError(f"could not download {filename}; every location failed:\n  - " + "\n  - ".join(failures))


def _fetch_one(url: str, destination: pathlib.Path, size: int, sha256: str) -> None:
    print(f"fastnn: downloading {url} ({size / 1e6:.1f} MB) to {destination}", file=sys.stderr, flush=True)
    fd, temporary = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            received, digest = _stream(url, out, size)
            out.flush()
            os.fsync(out.fileno())
        if received != size:
            raise DownloadError(f"{url}: received {received} bytes, expected {size}; the file was discarded")
        if digest != sha256:
            raise DownloadError(f"{url}: sha256 mismatch (got {digest}, expected {sha256}); "
                                "the file was discarded")
        os.replace(temporary, destination)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise


def _stream(url: str, out, size: int) -> tuple[int, str]:
    """Copy the body of ``url`` into ``out``; returns (bytes received, sha256 hex)."""
    request = urllib.request.Request(url, headers={"User-Agent": f"fastnn/{__version__} (dataset download)",
                                                   "Accept-Encoding": "identity"})
    try:
        response = urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"{url}: HTTP error {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise DownloadError(f"{url}: cannot connect ({exc.reason})") from None
    except (OSError, http.client.HTTPException) as exc:
        raise DownloadError(f"{url}: cannot connect ({type(exc).__name__}: {exc})") from None
    hasher = hashlib.sha256()
    received = 0
    with response:
        status = getattr(response, "status", 200)
        if status != 200:
            raise DownloadError(f"{url}: unexpected HTTP status {status}")
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.strip().isdigit() and int(declared) != size:
            raise DownloadError(f"{url}: the server announces {int(declared)} bytes, expected {size}; not downloaded")
        while True:
            try:
                chunk = response.read(_CHUNK)
            except (OSError, http.client.HTTPException) as exc:
                raise DownloadError(f"{url}: connection lost after {received} of {size} bytes "
                                    f"({type(exc).__name__}: {exc}); the file was discarded") from None
            if not chunk:
                break
            received += len(chunk)
            if received > size:
                raise DownloadError(f"{url}: the server sent more than the expected {size} bytes; "
                                    "the file was discarded")
            hasher.update(chunk)
            out.write(chunk)  # a local write error (disk full) propagates as the OSError it is
    if declared is not None and declared.strip().isdigit() and received != int(declared):
        raise DownloadError(f"{url}: connection closed after {received} of {int(declared)} bytes; "
                            "the file was discarded")
    return received, hasher.hexdigest()
