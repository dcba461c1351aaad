"""Reading photos and cutting resized grayscale face crops out of them."""
from __future__ import annotations

import math
import os

import numpy as np
from PIL import Image, UnidentifiedImageError


class ImageError(OSError):
    """A photo that is missing or cannot be decoded; the message names it."""


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) from the header only, without decoding the pixels."""
    try:
        with Image.open(path) as image:
            return image.size
    except FileNotFoundError:
        raise ImageError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError) as error:
        raise ImageError(f"cannot read image {path}: {error}") from None


def load_gray(path: str | os.PathLike, scale: float = 1.0) -> tuple[Image.Image, float]:
    """Decode ``path`` as 8-bit grayscale, possibly at a reduced resolution.

    ``scale`` is the largest resolution factor any crop of this photo needs
    (output pixels per original pixel).  JPEG can decode at 1/2, 1/4 or 1/8
    directly, which makes multi-megapixel photos cheap; we ask for twice the
    needed resolution so the final resize still antialiases.  Returns the image
    and the factor (decoded pixels per original pixel) to map boxes with.
    """
    try:
        image = Image.open(path)
        width, height = image.size
        if image.format == "JPEG" and scale < 0.25:
            wanted = max(1, math.ceil(width * scale * 2)), max(1, math.ceil(height * scale * 2))
            image.draft("L", wanted)
        image = image.convert("L")
    except FileNotFoundError:
        raise ImageError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ImageError(f"cannot decode image {path}: {error}") from None
    # JPEG scales by an exact power of two (the last pixel row may be partial).
    reduction = 2 ** round(math.log2(width / image.size[0]))
    return image, 1.0 / reduction


def crop_resized(image: Image.Image, box, size: int, factor: float = 1.0) -> np.ndarray:
    """Cut ``box`` (original-image pixels) out of ``image`` and resize it to ``size x size``."""
    region = tuple(float(v) * factor for v in box)
    resized = image.resize((size, size), Image.Resampling.BILINEAR, box=region)
    return np.asarray(resized, dtype=np.uint8)
