"""Images in, tensors out: the one place pixels are scaled, so training and ``rnnlab caption`` agree.

Training scenes are ``uint8 (N, S, S, C)`` arrays; :func:`to_tensor` gives ``float32 (N, C, S, S)``
in [0, 1] (``x / 255``). A user's picture goes through :func:`read_image`: PIL opens it (PNG or
JPEG only), it is converted to grey (``L``) or RGB as the run was trained, padded with black to a
square (so shapes are not stretched), resized to ``S × S`` with a bilinear filter, then scaled the
same way. Anything else — a missing path, a directory, a text file, a truncated image, another
format — raises :class:`~rnnlab.errors.DataError` naming the file and what was expected.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rnnlab.errors import DataError

FORMATS = ("PNG", "JPEG")

__all__ = ["FORMATS", "to_tensor", "read_image", "describe_preprocessing"]


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """``uint8 (N, S, S, C)`` -> ``float32 (N, C, S, S)`` with values ``x / 255`` in [0, 1]."""
    if images.dtype != np.uint8 or images.ndim != 4:
        raise DataError(f"expected uint8 images of shape (N, S, S, C); got {images.dtype} {images.shape}")
    return torch.from_numpy(images.transpose(0, 3, 1, 2).copy()).float().div_(255.0)  # a copy: PIL arrays are read-only


def describe_preprocessing(size: int, channels: int) -> str:
    mode = "grey" if channels == 1 else "RGB"
    return (f"converted to {mode}, padded with black to a square, resized to {size}x{size} (bilinear), "
            f"scaled to [0, 1] as in training")


def read_image(path: str | Path, size: int, channels: int, *, invert: bool = False) -> np.ndarray:
    """A PNG/JPEG file as ``uint8 (1, size, size, channels)``, prepared as training images were.

    ``invert`` turns dark-on-light pictures (ink on paper) into the light-on-dark scenes were drawn as.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise DataError(f"image {path} does not exist; expected a PNG or JPEG file")
    if not path.is_file():
        raise DataError(f"expected a PNG or JPEG file at {path}; it is a directory")
    try:
        with Image.open(path) as image:
            if image.format not in FORMATS:
                raise DataError(f"{path} is a {image.format} image; expected PNG or JPEG")
            image.load()
            image = image.convert("L" if channels == 1 else "RGB")
    except UnidentifiedImageError:
        raise DataError(f"{path} is not an image PIL can read; expected a PNG or JPEG file") from None
    except (OSError, SyntaxError, ValueError) as error:  # truncated or corrupt data
        raise DataError(f"cannot read the image {path} ({error}); expected a complete PNG or JPEG file") from None
    if image.width < 1 or image.height < 1:
        raise DataError(f"{path} has no pixels ({image.width}x{image.height})")
    if invert:
        from PIL import ImageOps

        image = ImageOps.invert(image)
    side = max(image.width, image.height)
    square = Image.new(image.mode, (side, side))  # black, like the scenes' background
    square.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    array = np.asarray(square.resize((size, size), Image.BILINEAR), dtype=np.uint8)
    return array.reshape(1, size, size, channels)
