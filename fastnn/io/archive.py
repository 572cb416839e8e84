"""The container of fastnn's model files: reading a zip with every check, writing one atomically,
and telling a file's kind from its content.

Nothing here knows a class: ``fastnn.io.codec`` turns objects into the JSON description and the
arrays this module stores, and back.
"""
from __future__ import annotations

import collections
import io
import json
import math
import os
import pickletools
import secrets
import stat
import zipfile
from dataclasses import dataclass

import numpy as np

from .._core.checks import memory_limit

__all__ = ["ModelFileError", "Invalid", "ArrayRef", "parse_json", "file_kind", "refuse_pickle", "ZipReader",
           "read_zip", "write_atomically", "write_zip", "show", "FLOAT_DTYPES"]

MAX_JSON_BYTES = 16 * 1024 * 1024
# fastnn stores members uncompressed; a deflated member (a file re-zipped by a tool) may shrink, but
# one that inflates more than this (zeros, a decompression bomb) is refused before it is read.
MAX_INFLATION = 50
_SMALL_MEMBER = 1 << 20       # members below this size are never refused for their ratio
_KIND_PREFIX = 1 << 16        # bytes read to tell a pickle without magic (protocols 0 and 1) apart
FLOAT_DTYPES = {"float32": np.dtype("<f4"), "float64": np.dtype("<f8")}
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member dates: the same model gives the same bytes
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


class ModelFileError(ValueError):
    """A model or parameters file that cannot be loaded: damaged, truncated, altered, of another
    kind, or describing something the safe format does not allow."""


class Invalid(Exception):
    """A check of a file's content failed; turned into a ModelFileError (load) or a ValueError
    (save) with the location prefixed."""


def show(value) -> str:
    """A value for a message, cut to 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass
class ArrayRef:
    """One array member: its name, its (little-endian float) dtype and its shape."""
    member: str
    dtype: np.dtype
    shape: tuple


def parse_json(data: bytes):
    def no_constants(name):
        raise Invalid(f"the JSON holds {name}, which the format never writes")

    def no_duplicates(pairs):
        result = {}
        for key, value in pairs:
            if key in result:
                raise Invalid(f"the JSON repeats the key {key!r}")
            result[key] = value
        return result

    try:
        text = data.decode("utf-8")
        return json.loads(text, parse_constant=no_constants, object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise Invalid(f"the JSON description does not parse: {exc}") from None


def file_kind(path) -> str:
    """"zip", "pickle" or "unknown", from the file's content (never its name)."""
    with open(path, "rb") as f:
        head = f.read(4)
        if head[:4] in _ZIP_MAGIC:
            return "zip"
        if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
            return "pickle"
        # Protocols 0 and 1 have no magic: see whether the file's first 64 KiB parse as pickle
        # opcodes (pickletools only reads them; nothing is executed). A bounded prefix keeps the
        # time to classify any file, junk included, bounded: a prefix that parses to its end
        # without an error counts as a pickle (loading one then needs allow_pickle=True anyway).
        f.seek(0)
        data = f.read(_KIND_PREFIX + 1)
        cut = len(data) > _KIND_PREFIX
        prefix = io.BytesIO(data[:_KIND_PREFIX])
        try:
            for opcode, _, _ in pickletools.genops(prefix):
                if opcode.name == "STOP":
                    return "pickle"
        except Exception:  # noqa: BLE001 - a parse failure: junk, unless the prefix merely ran out
            if cut and prefix.tell() >= _KIND_PREFIX:
                return "pickle"
    return "unknown"


def refuse_pickle(where, path, how):
    raise ModelFileError(
        f"{where}: {os.fspath(path)!r} is a pickle file (the book's format), not fastnn's safe format. "
        f"Unpickling can execute arbitrary code, so fastnn does not load pickles unless asked. If you "
        f"trust this file (you wrote it yourself), load it with {how}; to convert it, load it that way "
        f"once and save it again without format='pickle'.")


class ZipReader:
    """Reads a safe-format zip with every check; errors become ModelFileError(prefix + message)."""

    def __init__(self, zf: zipfile.ZipFile, prefix: str):
        self.zf = zf
        self.prefix = prefix
        infos = zf.infolist()
        names = [info.filename for info in infos]
        duplicates = sorted(name for name, count in collections.Counter(names).items() if count > 1)
        if duplicates:
            raise Invalid(f"the zip holds several members named {', '.join(map(repr, duplicates))}")
        self.infos = {info.filename: info for info in infos}
        for info in infos:
            if info.flag_bits & 0x1:
                raise Invalid(f"member {info.filename!r} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise Invalid(f"member {info.filename!r} uses an unsupported compression method")
            if (info.compress_type == zipfile.ZIP_DEFLATED and info.file_size > _SMALL_MEMBER
                    and info.file_size > MAX_INFLATION * max(info.compress_size, 1)):
                raise Invalid(f"member {info.filename!r} inflates from {info.compress_size} to {info.file_size} "
                              f"bytes, more than {MAX_INFLATION} times: refused as a decompression bomb "
                              f"(fastnn writes its members uncompressed)")
        total = sum(info.file_size for info in infos)
        if total > memory_limit():
            raise Invalid(f"the members would take {total} bytes, more than this machine's memory "
                          f"({memory_limit()} bytes)")

    def json(self, name, other_name, other_message):
        if name not in self.infos:
            if other_name in self.infos:
                raise Invalid(other_message)
            raise Invalid(f"no {name} member: not a fastnn {name.split('.')[0]} file "
                           f"(members: {', '.join(sorted(self.infos)[:10]) or 'none'})")
        info = self.infos[name]
        if info.file_size > MAX_JSON_BYTES:
            raise Invalid(f"{name} is {info.file_size} bytes, more than a description can be")
        with self.zf.open(info) as f:
            data = f.read(MAX_JSON_BYTES + 1)
        return parse_json(data)

    def check_members(self, expected):
        unexpected = sorted(set(self.infos) - set(expected))
        missing = sorted(set(expected) - set(self.infos))
        if missing:
            raise Invalid(f"member {missing[0]!r} is missing" + (f" (and {len(missing) - 1} more)"
                                                                  if len(missing) > 1 else ""))
        if unexpected:
            raise Invalid(f"the zip holds unexpected member {unexpected[0]!r}" +
                           (f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""))

    def array(self, ref: ArrayRef) -> np.ndarray:
        """The array of one member, after checking its .npy header promises exactly ref's dtype
        and shape and its size matches (no truncated or trailing data)."""
        info = self.infos[ref.member]
        where = f"member {ref.member!r}"
        fmt = np.lib.format
        with self.zf.open(info) as f:
            try:
                version = fmt.read_magic(f)
                if version == (1, 0):
                    shape, fortran_order, dtype = fmt.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran_order, dtype = fmt.read_array_header_2_0(f)
                else:
                    raise Invalid(f"{where} is a .npy file of version {version}, which the format never writes")
            except (ValueError, EOFError) as exc:
                raise Invalid(f"{where} is not a valid .npy array: {exc}") from None
            header_size = f.tell()
        if dtype != ref.dtype:
            raise Invalid(f"{where} holds {dtype.str} data, the description promises {ref.dtype.name} "
                           f"({ref.dtype.str})")
        if tuple(shape) != ref.shape:
            raise Invalid(f"{where} holds an array of shape {tuple(shape)}, the description promises {ref.shape}")
        if fortran_order:
            raise Invalid(f"{where} is in Fortran order, which the format never writes")
        expected_size = header_size + math.prod(ref.shape) * ref.dtype.itemsize
        if info.file_size != expected_size:
            raise Invalid(f"{where} is {info.file_size} bytes, its header promises {expected_size}: "
                           f"truncated or altered")
        with self.zf.open(info) as f:
            try:
                array = fmt.read_array(f, allow_pickle=False)
            except (ValueError, EOFError) as exc:
                raise Invalid(f"{where} does not read as an array: {exc}") from None
            if f.read(1):
                raise Invalid(f"{where} has data after its array")
        if array.dtype != ref.dtype or array.shape != ref.shape:  # cannot happen after the header check
            raise Invalid(f"{where} read as {array.dtype} {array.shape}, expected {ref.dtype} {ref.shape}")
        return np.ascontiguousarray(array.astype(array.dtype.newbyteorder("="), copy=False))


def read_zip(path, where, read):
    """Open path as a zip and run read(_ZipReader); every failure is a ModelFileError."""
    prefix = f"{where}: {os.fspath(path)!r}"
    try:
        with zipfile.ZipFile(path) as zf:
            return read(ZipReader(zf, prefix))
    except Invalid as exc:
        raise ModelFileError(f"{prefix}: {exc}") from None
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - zipfile/zlib/numpy raise many kinds on a damaged file
        raise ModelFileError(f"{prefix} is damaged or truncated ({type(exc).__name__}: {exc})") from exc


def write_atomically(path, write) -> None:
    """Call write(binary file) on a new temporary file next to path, fsync it and rename it over
    path. On any failure the temporary file is removed and path is untouched."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    temporary = None
    try:
        # Everything from the temporary file's creation on is inside this try, so an interrupt
        # (KeyboardInterrupt) landing anywhere, even between os.open and the next statement,
        # reaches the cleanup. A name that exists after a refused os.open is another file's: the
        # loop moves on; a name that exists after any other exception is this call's own.
        while True:
            temporary = os.path.join(directory, f".{base}.{secrets.token_hex(8)}.tmp")
            try:
                fd = os.open(temporary, flags, 0o666)  # the umask applies, as with open(path, "wb")
                break
            except FileExistsError:
                temporary = None
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        try:  # an existing file keeps its permissions, as when overwritten in place
            os.chmod(temporary, stat.S_IMODE(os.stat(path).st_mode))
        except OSError:
            pass
        os.replace(temporary, path)
    except BaseException:
        if temporary is not None:
            try:
                os.unlink(temporary)
            except OSError:
                pass
        raise
    try:  # make the rename itself durable (POSIX); best effort
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def write_zip(f, json_name, document: bytes, arrays: dict) -> None:
    """The zip of a model file: the JSON description, then one stored .npy member per array. An
    exception while writing (a KeyboardInterrupt too) is raised as it came: zipfile's own complaint
    about closing with a member still open would otherwise replace it."""
    zf = zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED)
    try:
        zf.writestr(zipfile.ZipInfo(json_name, date_time=_ZIP_DATE), document)
        for member, array in arrays.items():
            array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
            info = zipfile.ZipInfo(member, date_time=_ZIP_DATE)
            with zf.open(info, "w", force_zip64=array.nbytes > 2 ** 30) as m:
                np.lib.format.write_array(m, array, allow_pickle=False)
    except BaseException:
        try:
            zf.close()
        except Exception:  # noqa: BLE001 - the file is discarded; the first exception is the one to see
            zf.fp = None   # and ZipFile.__del__ must not try to close it again
        raise
    zf.close()
