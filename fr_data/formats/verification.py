"""InsightFace verification packs (``.bin``): read with a restricted unpickler, write the same format.

A pack is a pickled ``(bins, issame_list)``: ``bins`` holds ``2 * P`` encoded images with the pairs
interleaved (``bins[2 * i]`` vs ``bins[2 * i + 1]``), ``issame_list`` the ``P`` pair labels. Official packs
were pickled by Python 2 (byte strings need ``encoding="bytes"``); packs built with ``cv2.imencode`` hold
numpy ``uint8`` arrays instead of ``bytes``.

Pickles can run arbitrary code, so :func:`load_bin` never uses ``pickle.load``: :class:`PackUnpickler`
resolves only the few globals a pack legitimately needs (numpy array and dtype reconstruction, latin-1
byte-string decoding, ``bytes``/``bytearray``) and refuses every other global *before* anything is
called, so a malicious pack is rejected with nothing executed. What the allowed constructors may allocate
is bounded by the file's size (:class:`AllocationBudget`): a 47-byte pickle cannot ask for
``bytearray(3_000_000_000)``.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import io
import math
import operator
import os
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from fr_data.formats.images import header_size
from fr_data.io.atomic import atomic_write_bytes
from fr_data.io.errors import DataError, one_line

if TYPE_CHECKING:  # torch is imported lazily: the synthetic generator writes packs without it
    import torch

__all__ = ["ALLOCATION_FACTOR", "AllocationBudget", "PackUnpickler", "VerificationPack", "check_images", "decode_pack", "decode_pack_uint8", "load_bin",
           "save_bin"]


@dataclass(frozen=True)
class VerificationPack:
    """Images and pair labels of a verification pack.

    Attributes:
        images: ``2 * P`` encoded images (JPEG/PNG bytes), pairs interleaved.
        issame: ``(P,)`` bool, True for genuine pairs.
        path: the file it was read from (for error messages); empty if built in memory.
    """

    images: list[bytes]
    issame: np.ndarray
    path: str = ""

    def __len__(self) -> int:
        return len(self.issame)


def _latin1_encode(obj: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` limited to latin-1 (how protocol-2 pickles store byte strings)."""
    if codecs.lookup(encoding).name != "iso8859-1" or not isinstance(obj, str):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return obj.encode("latin-1", errors)


def _numpy_global(*candidates: str) -> Callable[[], Any]:
    """Resolve the first importable ``module:name`` (numpy 2 moved ``numpy.core`` to ``numpy._core``)."""
    def resolve() -> Any:
        import importlib
        for spec in candidates:
            module, name = spec.split(":")
            try:
                return getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError):
                continue
        raise pickle.UnpicklingError(f"numpy does not provide {candidates[0]}")
    return resolve


_RECONSTRUCT = _numpy_global("numpy._core.multiarray:_reconstruct", "numpy.core.multiarray:_reconstruct")
_FROMBUFFER = _numpy_global("numpy._core.numeric:_frombuffer", "numpy.core.numeric:_frombuffer")
_SCALAR = _numpy_global("numpy._core.multiarray:scalar", "numpy.core.multiarray:scalar")

#: Every global a verification pack may reference, mapped to a resolver of the object to use.
ALLOWED_GLOBALS: dict[tuple[str, str], Callable[[], Any]] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("_codecs", "encode"): lambda: _latin1_encode,
    ("builtins", "bytes"): lambda: bytes,
    ("builtins", "bytearray"): lambda: bytearray,
}


#: A pack's pickle may allocate at most this many times its file's size in all (each object at most once it):
#: every image of a real pack is stored in the file, so what it builds is about the file's size.
ALLOCATION_FACTOR = 4


class AllocationBudget:
    """What the constructors a pack calls may allocate: each object at most ``limit`` bytes (the file's
    size), all of them together at most ``ALLOCATION_FACTOR * limit``.

    Args:
        path: the file, named in errors.
        limit: the file's size in bytes.
    """

    def __init__(self, path: str, limit: int):
        self.path, self.limit, self.total = path, limit, 0
        self._array = self._ndarray()

    def charge(self, nbytes: int, what: str) -> None:
        """Count an allocation of ``nbytes`` by ``what``, or refuse it.

        Raises:
            DataError: naming the file, the constructor and the size asked for.
        """
        if nbytes > self.limit:
            raise DataError(self.path, what, f"refused: asks for {nbytes} bytes, more than the file's own "
                                             f"{self.limit} bytes")
        if self.total + nbytes > ALLOCATION_FACTOR * self.limit:
            raise DataError(self.path, what, f"refused: allocations reach {self.total + nbytes} bytes, more than "
                                             f"{ALLOCATION_FACTOR} times the file's {self.limit} bytes")
        self.total += nbytes

    def bounded(self, key: tuple[str, str], target: Any) -> Any:
        """``target`` (the object an allowed global resolves to), charging what a call to it allocates."""
        if target is bytes or target is bytearray:
            return self._sized(target)
        if target is np.ndarray:
            return self._array
        if key[1] == "_reconstruct":
            return self._reconstruct(target)
        return target

    def _sized(self, kind: type) -> Callable[..., Any]:
        def build(*args: Any) -> Any:
            size = _as_size(args[0]) if args else None
            if size is not None:  # bytes(N) / bytearray(N): N zero bytes
                self.charge(size, f"{kind.__name__}({size})")
            return kind(*args)
        return build

    def _ndarray(self) -> Callable[..., Any]:
        def build(shape: Any, dtype: Any = float, buffer: Any = None, *args: Any, **kwargs: Any) -> np.ndarray:
            if buffer is None:
                self.charge(_array_bytes(shape, dtype), f"numpy.ndarray({shape!r})")
            return np.ndarray(shape, dtype, buffer, *args, **kwargs)
        return build

    def _reconstruct(self, reconstruct: Callable[..., Any]) -> Callable[..., Any]:
        def build(subtype: Any, shape: Any, dtype: Any) -> Any:
            subtype = np.ndarray if subtype is self._array else subtype  # the class, not its bounded call
            self.charge(_array_bytes(shape, dtype), f"numpy array of shape {shape!r}")
            return reconstruct(subtype, shape, dtype)
        return build


def _as_size(value: Any) -> int | None:
    """The N of ``bytes(N)``: an integer argument (a buffer, text or sequence is copied, not sized)."""
    if isinstance(value, (bytes, bytearray, memoryview, str, list, tuple, np.ndarray)):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def _array_bytes(shape: Any, dtype: Any) -> int:
    """Bytes of an array of ``shape`` and ``dtype`` (a bad shape or dtype is left to numpy to refuse)."""
    try:
        dims = (shape,) if isinstance(shape, int) else tuple(int(d) for d in shape)
        itemsize = np.dtype(dtype.decode("latin-1") if isinstance(dtype, bytes) else dtype).itemsize
    except (TypeError, ValueError):
        return 0
    return math.prod(max(d, 0) for d in dims) * max(itemsize, 1)


class PackUnpickler(pickle.Unpickler):
    """Unpickler that resolves only :data:`ALLOWED_GLOBALS` and refuses anything else.

    Args:
        file: binary file positioned at the pickle.
        path: the file name used in error messages.
        encoding: how Python-2 byte strings are decoded (``"ASCII"``, ``"bytes"`` or ``"latin1"``).
        limit: the file's size in bytes (what the pickle may allocate, see :class:`AllocationBudget`);
            measured from ``file`` when not given.
    """

    def __init__(self, file: io.BufferedIOBase, path: str | os.PathLike, encoding: str = "ASCII",
                 limit: int | None = None):
        super().__init__(file, encoding=encoding)
        self._path = os.fspath(path)
        if limit is None:
            here = file.tell()
            limit = file.seek(0, io.SEEK_END)
            file.seek(here)
        self._budget = AllocationBudget(self._path, limit)

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if (module, name) in _compat_pickle.NAME_MAPPING:  # Python 2 names, as pickle's fix_imports does
            key = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            key = (_compat_pickle.IMPORT_MAPPING[module], name)
        if key not in ALLOWED_GLOBALS:
            raise DataError(self._path, f"global {module}.{name}",
                            "refused: a verification pack may only hold bytes, numpy uint8 arrays and "
                            "booleans; this pickle references another global and was not executed")
        return self._budget.bounded(key, ALLOWED_GLOBALS[key]())

    def persistent_load(self, pid: Any) -> Any:
        raise DataError(self._path, "persistent id", "refused: persistent references are not allowed")


def load_bin(path: str | os.PathLike) -> VerificationPack:
    """Read an InsightFace ``.bin`` verification pack with the restricted :class:`PackUnpickler`.

    Python-3 pickles load directly; Python-2 pickles are retried with ``encoding="bytes"`` (then
    ``"latin1"``). numpy ``uint8`` image arrays are converted to bytes.

    Raises:
        DataError: the file is missing, not a pickle, references a refused global, or does not hold
            ``(2 * P images, P booleans)``.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(path, "", f"cannot read verification pack: {exc}") from exc
    obj = _unpickle(data, path)
    if not isinstance(obj, (tuple, list)) or len(obj) != 2:
        raise DataError(path, "top level", f"expected a (bins, issame_list) pair, got {type(obj).__name__}")
    bins, issame = obj
    issame = _as_issame(issame, path)
    images = _as_images(bins, path)
    if len(images) != 2 * len(issame):
        raise DataError(path, "", f"{len(images)} images for {len(issame)} pairs; expected {2 * len(issame)}")
    return VerificationPack(images, issame, str(path))


def _unpickle(data: bytes, path: Path) -> Any:
    last: Exception | None = None
    for encoding in ("ASCII", "bytes", "latin1"):
        try:
            return PackUnpickler(io.BytesIO(data), path, encoding=encoding, limit=len(data)).load()
        except DataError:
            raise
        except UnicodeDecodeError as exc:  # Python 2 byte strings: retry with another encoding
            last = exc
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
                IndexError, KeyError, MemoryError) as exc:
            if encoding == "ASCII":
                raise DataError(path, "", f"not a valid verification pack pickle: {_describe(exc)}") from exc
            last = exc
    raise DataError(path, "", f"cannot decode Python-2 pickle: {_describe(last)}")


def _describe(exc: BaseException | None) -> str:
    """An exception as ``Type: message`` on one line (a MemoryError's message is empty)."""
    return "unknown error" if exc is None else f"{type(exc).__name__}: {one_line(exc)}"


def _as_issame(issame: Any, path: Path) -> np.ndarray:
    values = list(issame) if isinstance(issame, (list, tuple, np.ndarray)) else None
    if values is None:
        raise DataError(path, "issame_list", f"expected a list of booleans, got {type(issame).__name__}")
    for i, v in enumerate(values):
        if not isinstance(v, (bool, np.bool_, int, np.integer)) or v not in (0, 1):
            raise DataError(path, f"issame_list[{i}]", f"expected a boolean, got {v!r}")
    return np.asarray(values, dtype=bool)


def _as_images(bins: Any, path: Path) -> list[bytes]:
    if not isinstance(bins, (list, tuple)):
        raise DataError(path, "bins", f"expected a list of images, got {type(bins).__name__}")
    out = []
    for i, item in enumerate(bins):
        if isinstance(item, (bytes, bytearray)):
            out.append(bytes(item))
        elif isinstance(item, np.ndarray) and item.dtype == np.uint8:
            out.append(item.tobytes())
        elif isinstance(item, str):  # a Python-2 byte string read with encoding="latin1"
            out.append(item.encode("latin-1"))
        else:
            raise DataError(path, f"image {i}", f"expected bytes or a uint8 array, got {type(item).__name__}")
    return out


def save_bin(path: str | os.PathLike, images: Sequence[bytes | np.ndarray], issame: Sequence[bool]) -> None:
    """Write an InsightFace ``.bin`` pack atomically: ``pickle((list of bytes, list of bool))``.

    Args:
        path: target file.
        images: ``2 * P`` encoded images (bytes or uint8 arrays), pairs interleaved.
        issame: ``P`` pair labels.
    """
    issame = [bool(v) for v in issame]
    if len(images) != 2 * len(issame):
        raise ValueError(f"{len(images)} images for {len(issame)} pairs; expected {2 * len(issame)}")
    bins = [img.tobytes() if isinstance(img, np.ndarray) else bytes(img) for img in images]
    atomic_write_bytes(path, pickle.dumps((bins, issame), protocol=pickle.HIGHEST_PROTOCOL))


def check_images(pack: VerificationPack) -> None:
    """Check every image of ``pack`` starts like a JPEG or PNG with a readable size header (cheap: no
    decoding), so a damaged pack is refused when it is opened rather than at its first evaluation.

    Raises:
        DataError: naming the pack file and the image index.
    """
    for i, data in enumerate(pack.images):
        found = header_size(data)
        if found is None or found[1] is None:
            what = "no JPEG or PNG" if found is None else f"a {found[0]} without a readable size header"
            raise DataError(pack.path or "<pack>", f"image {i}", f"{what} ({len(data)} bytes)")


def decode_pack_uint8(pack: VerificationPack, size: int = 112) -> np.ndarray:
    """Decode every image to ``(2P, size, size, 3)`` uint8 RGB (resized bilinearly when another size).

    Raises:
        DataError: an image cannot be decoded (names the pack file and the image index).
    """
    out = np.empty((len(pack.images), size, size, 3), np.uint8)
    for i, data in enumerate(pack.images):
        try:
            img = Image.open(io.BytesIO(data))
            img = img.convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise DataError(pack.path or "<pack>", f"image {i}", f"cannot decode image: {exc}") from exc
        if img.size != (size, size):
            img = img.resize((size, size), Image.BILINEAR)
        out[i] = np.asarray(img)
    return out


def decode_pack(pack: VerificationPack, size: int = 112, flip: bool = False) -> "torch.Tensor":
    """Decode every image to a ``(2P, 3, size, size)`` float tensor, ``(x / 255 - 0.5) / 0.5`` (RGB).

    Images of another size are resized (bilinear), as InsightFace's ``load_bin`` does; ``flip`` mirrors
    them horizontally (for flip-test embeddings).

    Raises:
        DataError: an image cannot be decoded (names the pack file and the image index).
    """
    out = decode_pack_uint8(pack, size)
    if flip:
        out = out[:, :, ::-1]
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(out.transpose(0, 3, 1, 2))).float()
    return tensor.div_(255).sub_(0.5).div_(0.5)
