"""Read an input file for a pair: a ``.npy`` array or an image (PNG, JPEG, ...).

Images need Pillow (``pip install 'sisguard[plot]'``); it is imported only when an image is read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._errors import InvalidInput

__all__ = ["IMAGE_SUFFIXES", "image_to_input", "read_input"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def read_input(
    path: str | Path, input_shape: tuple[int, ...], *, scale: float = 1.0 / 255.0, invert: bool = False
) -> NDArray[Any]:
    """The array in ``path``: ``.npy`` as stored, images via :func:`image_to_input`."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".npy":
        try:
            arr: NDArray[Any] = np.load(p, allow_pickle=False)
        except OSError as exc:
            raise InvalidInput(f"cannot read {p}: {exc.strerror or exc}") from exc
        except ValueError as exc:
            raise InvalidInput(f"{p} is not a valid .npy file: {exc}") from exc
        return arr
    if suffix in IMAGE_SUFFIXES:
        return image_to_input(p, input_shape, scale=scale, invert=invert)
    raise InvalidInput(f"{p}: expected a .npy file or an image ({', '.join(IMAGE_SUFFIXES)})")


def image_to_input(
    path: str | Path, input_shape: tuple[int, ...], *, scale: float = 1.0 / 255.0, invert: bool = False
) -> NDArray[np.float32]:
    """An image as one input of ``input_shape`` (``[C, H, W]`` with C 1 or 3, or ``[H, W]``):
    converted to grey or RGB, resized to H x W, grey levels inverted if asked, times ``scale``."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as exc:
        raise InvalidInput("reading images needs Pillow: pip install 'sisguard[plot]'") from exc
    if len(input_shape) == 2:
        channels, (h, w) = 0, input_shape
    elif len(input_shape) == 3 and input_shape[0] in (1, 3):
        channels, h, w = input_shape
    else:
        raise InvalidInput(
            f"an image cannot become an input of shape {list(input_shape)}: expected [C, H, W] with C 1 or 3, "
            "or [H, W]; pass a .npy file instead"
        )
    try:
        with Image.open(path) as img:
            img.load()
            converted = img.convert("RGB" if channels == 3 else "L").resize((w, h), Image.Resampling.LANCZOS)
    except OSError as exc:
        raise InvalidInput(f"cannot read image {path}: {exc}") from exc
    except UnidentifiedImageError as exc:  # pragma: no cover - an OSError subclass on recent Pillow
        raise InvalidInput(f"{path} is not an image Pillow can read") from exc
    arr = np.asarray(converted, dtype=np.float32)
    if invert:
        arr = 255.0 - arr
    arr = arr * np.float32(scale)
    if channels == 3:
        arr = arr.transpose(2, 0, 1)
    elif channels == 1:
        arr = arr[None]
    return np.ascontiguousarray(arr, dtype=np.float32)
