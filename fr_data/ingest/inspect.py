"""What the sharder learns about one image before storing it: format, header size, optional decode check."""

from __future__ import annotations

import io
import os
from typing import NamedTuple

from PIL import Image

from fr_data.formats.images import header_size
from fr_data.io.errors import DataError


class ImageInfo(NamedTuple):
    """What the sharder learns about one image: stored extension, header size, decode check.

    A NamedTuple rather than a frozen dataclass: one is built per image, and this is cheaper.
    """

    ext: str
    width: int
    height: int
    decoded_ok: bool | None


def inspect_image(data: bytes, path: str | os.PathLike, where: str, decode: bool = True) -> ImageInfo:
    """Identify a JPEG/PNG by its magic bytes, read its size from the header, optionally decode it.

    With ``decode`` the image is fully decoded with PIL and the decoded size must equal the size
    parsed from the header (``decoded_ok`` True); without it ``decoded_ok`` is None.

    Raises:
        DataError: naming ``path`` and ``where`` when the bytes are no JPEG/PNG, have no readable
            size header, do not decode, or decode to another size.
    """
    found = header_size(data)
    if found is None:
        raise DataError(path, where, f"not a JPEG or PNG image (starts with {data[:8]!r})")
    ext, size = found
    if size is None:
        raise DataError(path, where, f"{ext} image without a readable size header")
    if not decode:
        return ImageInfo(ext, size[0], size[1], None)
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            decoded = img.im.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(path, where, f"image does not decode: {exc}") from None
    if decoded != size:
        raise DataError(path, where, f"decoded size {decoded} differs from header size {size}")
    return ImageInfo(ext, size[0], size[1], True)
