"""Strict reader for IDX files (the MNIST format), gzip-compressed or not.

An IDX file is a 4-byte magic number (two zero bytes, an element-type code, the number of dimensions),
one big-endian uint32 per dimension, then the elements in row-major order, big-endian. The reader checks
every part and the exact byte length; any problem is a ValueError that names the file and says what is
wrong. Memory use is bounded by the data actually present, never by a (possibly corrupt) header.
"""
from __future__ import annotations

import gzip
import os
import pathlib
import struct
import zlib

import numpy as np

from .._core.checks import memory_limit

# element-type code -> (name, big-endian dtype)
IDX_TYPES: dict[int, tuple[str, np.dtype]] = {
    0x08: ("unsigned byte", np.dtype(np.uint8)),
    0x09: ("signed byte", np.dtype(np.int8)),
    0x0B: ("short", np.dtype(">i2")),
    0x0C: ("int", np.dtype(">i4")),
    0x0D: ("float", np.dtype(">f4")),
    0x0E: ("double", np.dtype(">f8")),
}

_CHUNK = 1 << 24
# The most a gzip-compressed IDX file may inflate (the real MNIST files: about 5 times). Beyond it
# the file is refused as a decompression bomb before its data is inflated.
MAX_GZIP_INFLATION = 200


def is_gzip(path: pathlib.Path) -> bool:
    return path.name.endswith(".gz")


def read_idx(path: str | os.PathLike, *, dtype_code: int | None = None, ndim: int | None = None) -> np.ndarray:
    """The array stored in the IDX file ``path`` (``.gz``: gzip-compressed), in native byte order.

    ``dtype_code`` and ``ndim``, when given, are required values of the element type and the number of
    dimensions. Raises ValueError naming the file on a bad magic number, unknown element type, truncated
    header or data, extra bytes after the data, or a damaged gzip stream.
    """
    path = pathlib.Path(path)
    try:
        if is_gzip(path):
            with gzip.open(path, "rb") as stream:
                return _parse(stream, path, dtype_code, ndim, raw_size=None,
                              compressed_size=os.path.getsize(path))
        with open(path, "rb") as stream:
            return _parse(stream, path, dtype_code, ndim, raw_size=os.fstat(stream.fileno()).st_size)
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise ValueError(f"{path}: damaged gzip data ({exc})") from None
    except EOFError as exc:
        raise ValueError(f"{path}: the gzip stream is truncated ({exc})") from None


def _read_exact(stream, count: int) -> bytearray:
    """Up to ``count`` bytes (fewer only at end of file), read in bounded chunks."""
    parts = bytearray()
    while len(parts) < count:
        chunk = stream.read(min(_CHUNK, count - len(parts)))
        if not chunk:
            break
        parts += chunk
    return parts


def _parse(stream, path: pathlib.Path, dtype_code, ndim, raw_size, compressed_size=None) -> np.ndarray:
    magic = stream.read(4)
    if len(magic) < 4:
        raise ValueError(f"{path}: not an IDX file: only {len(magic)} bytes, shorter than the 4-byte magic number")
    if magic[0] != 0 or magic[1] != 0:
        raise ValueError(f"{path}: not an IDX file: bad magic number 0x{magic.hex()} "
                         "(an IDX file starts with two zero bytes)")
    code, dims_count = magic[2], magic[3]
    if code not in IDX_TYPES:
        raise ValueError(f"{path}: unknown IDX element type 0x{code:02x} in magic number 0x{magic.hex()}")
    type_name, dtype = IDX_TYPES[code]
    if dtype_code is not None and code != dtype_code:
        want = IDX_TYPES[dtype_code][0]
        raise ValueError(f"{path}: element type is {type_name} (0x{code:02x}), expected {want} (0x{dtype_code:02x})")
    if ndim is not None and dims_count != ndim:
        raise ValueError(f"{path}: magic number 0x{magic.hex()} declares {dims_count} dimensions, expected {ndim}")
    header = stream.read(4 * dims_count)
    if len(header) < 4 * dims_count:
        raise ValueError(f"{path}: truncated IDX header: {dims_count} dimension sizes need "
                         f"{4 * dims_count} bytes, found {len(header)}")
    shape = struct.unpack(f">{dims_count}I", header)
    count = 1
    for size in shape:
        count *= size
    expected = count * dtype.itemsize
    header_bytes = 4 + 4 * dims_count
    if raw_size is not None and raw_size != header_bytes + expected:
        data_bytes = raw_size - header_bytes
        what = "truncated" if data_bytes < expected else "has extra bytes after the data"
        raise ValueError(f"{path}: {what}: shape {shape} of {type_name} needs {expected} data bytes "
                         f"after the {header_bytes}-byte header, the file has {data_bytes}")
    if expected > memory_limit():
        raise ValueError(f"{path}: its header promises shape {shape} of {type_name}, {expected} bytes, more "
                         f"than this machine's memory ({memory_limit()} bytes): damaged or not an IDX file")
    if compressed_size is not None and expected > MAX_GZIP_INFLATION * max(compressed_size, 1):
        raise ValueError(f"{path}: its header promises {expected} data bytes from {compressed_size} compressed "
                         f"bytes, more than {MAX_GZIP_INFLATION} times: refused as a decompression bomb")
    data = _read_exact(stream, expected)
    if len(data) < expected:
        raise ValueError(f"{path}: truncated: shape {shape} of {type_name} needs {expected} data bytes "
                         f"after the {header_bytes}-byte header, found only {len(data)}")
    if stream.read(1):
        raise ValueError(f"{path}: has extra bytes after the data: shape {shape} of {type_name} needs "
                         f"exactly {expected} data bytes after the {header_bytes}-byte header")
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False) if dtype.byteorder == ">" else array


def write_idx(array: np.ndarray) -> bytes:
    """The IDX encoding of ``array`` (used by the tests to build format-exact files)."""
    array = np.asarray(array)
    for code, (_, dtype) in IDX_TYPES.items():
        if dtype.kind == array.dtype.kind and dtype.itemsize == array.dtype.itemsize:
            break
    else:
        raise TypeError(f"no IDX element type for dtype {array.dtype}")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=dtype).tobytes()
