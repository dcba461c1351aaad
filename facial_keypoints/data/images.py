"""Reading photos and cutting resized grayscale face crops out of them."""
from __future__ import annotations

import math
import os
from typing import Union

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError


class ImageError(OSError):
    """A photo that is missing or cannot be decoded; the message names it."""


def naming(path, error: Exception) -> str:
    """``error``'s message with ``path`` in it once: as it is where it names the file, else after it."""
    return str(error) if str(path) in str(error) else f"{path}: {error}"


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
    """Cut ``box`` (original-image pixels) out of ``image`` and resize it to ``size x size``.

    PIL's bilinear resize antialiases (its filter widens with the reduction): the
    crops models are trained and evaluated on.  Inference uses ``crop_warped``.
    """
    region = tuple(float(v) * factor for v in box)
    resized = image.resize((size, size), Image.Resampling.BILINEAR, box=region)
    return np.asarray(resized, dtype=np.uint8)


def crop_warped(gray: np.ndarray, box, size: int) -> np.ndarray:
    """``crop_resized`` of an (H, W) uint8 array with OpenCV: 2-3x faster than PIL on a face.

    A plain bilinear warp aliases when a face is several times the crop size, so
    while the box is at least twice the crop size the region is halved by area
    averaging, and one bilinear warp does the rest (a reduction below 2).  Same
    geometry as ``crop_resized`` (pixel i spans [i, i+1)); outside the photo is
    black.  Halving is OpenCV's fast area path, quicker than one 3x, 4x or 5x area
    step (benchmarks/crop_speed.py times the crops).
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    ratio = min(x1 - x0, y1 - y0) / size
    halvings = int(math.log2(ratio)) if ratio >= 2 else 0
    if halvings:
        gray, (x0, y0, x1, y1) = _halved_region(gray, (x0, y0, x1, y1), halvings)
    sx, sy = size / (x1 - x0), size / (y1 - y0)
    # continuous x' = (x - x0) * sx; OpenCV works in pixel centres (continuous - 0.5) on both sides
    matrix = np.array([[sx, 0.0, (0.5 - x0) * sx - 0.5], [0.0, sy, (0.5 - y0) * sy - 0.5]])
    return cv2.warpAffine(gray, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def _halved_region(gray: np.ndarray, box, halvings: int):
    """The photo around ``box`` reduced 2**halvings times by area averaging, and the box in its pixels.

    The region is whole 2**halvings-pixel blocks from the box's top-left pixel:
    it reaches further into the photo where it can, and repeats the photo's
    last row or column only where the photo ends.  (An unchanged photo when the
    box lies wholly outside it: the warp then sees black.)
    """
    x0, y0, x1, y1 = box
    block = 1 << halvings
    height, width = gray.shape
    left, top = max(0, math.floor(x0)), max(0, math.floor(y0))
    right, bottom = min(width, math.ceil(x1) + 1), min(height, math.ceil(y1) + 1)
    if right <= left or bottom <= top:
        return gray, box
    right = min(width, left + -(-(right - left) // block) * block)  # whole blocks, from the photo where it has them
    bottom = min(height, top + -(-(bottom - top) // block) * block)
    region = gray[top:bottom, left:right]
    pad_y, pad_x = -(bottom - top) % block, -(right - left) % block
    if pad_x or pad_y:  # the photo ends inside the last block: repeat its edge
        region = cv2.copyMakeBorder(region, 0, pad_y, 0, pad_x, cv2.BORDER_REPLICATE)
    for _ in range(halvings):
        region = cv2.resize(region, (region.shape[1] // 2, region.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return region, ((x0 - left) / block, (y0 - top) / block, (x1 - left) / block, (y1 - top) / block)


def as_rgb(image: Image.Image) -> Image.Image:
    """RGB pixels of any PIL image: alpha laid on white, 16-bit grayscale to its top 8 bits.

    Mode ``I`` (32-bit integers) holds either 16-bit pixels (older Pillow opens 16-bit PNGs so) or
    8-bit ones (``Image.fromarray`` of an int32 array): values above 255 mean the first.
    """
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        pixels = np.asarray(image).astype(np.int64)
        sixteen_bit = image.mode != "I" or pixels.max(initial=0) > 255
        image = Image.fromarray(((pixels >> 8) if sixteen_bit else pixels).clip(0, 255).astype(np.uint8))
    return image.convert("RGB")


def regular_file(path):
    """``path`` if it is a regular file; a FIFO or a device would block a read for ever."""
    if isinstance(path, (str, os.PathLike)) and os.path.exists(path) and not os.path.isfile(path):
        raise ImageError(f"{path} is not a regular file")
    return path


def open_photo(path, name: str | None = None) -> Image.Image:
    """RGB pixels as the photo is meant to be seen: EXIF rotation applied, then ``as_rgb``.

    ``path`` is a path or a file object; ``name`` is what error messages call it (default: ``path``).
    """
    regular_file(path)
    name = str(path) if name is None else name
    try:
        with Image.open(path) as image:
            if not image.width or not image.height:
                raise ValueError(f"it has no pixels ({image.width}x{image.height})")
            return as_rgb(ImageOps.exif_transpose(image))
    except FileNotFoundError:
        raise ImageError(f"image not found: {name}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        message = str(error).replace(repr(path), name) if not isinstance(path, (str, os.PathLike)) else str(error)
        raise ImageError(f"cannot read image {name}: {message}") from None


ImageLike = Union[str, os.PathLike, Image.Image, np.ndarray]


def to_rgb_image(image: ImageLike, bgr: bool = False) -> Image.Image:
    """An RGB PIL image from a path, a PIL image, or a uint8 array (H, W), (H, W, 3) or (H, W, 4).

    ``bgr=True``: a colour array is in OpenCV's BGR(A) order.  A path is read as ``predict``
    reads it (EXIF rotation applied, alpha laid on white).
    """
    if isinstance(image, (str, os.PathLike)):
        return open_photo(image)
    if isinstance(image, Image.Image):
        if not image.width or not image.height:
            raise ValueError(f"an image must have pixels, not the size {image.width}x{image.height}")
        return as_rgb(image)
    if isinstance(image, np.ndarray):
        if image.ndim >= 2 and not (image.shape[0] and image.shape[1]):
            raise ValueError(f"an image must have pixels, not the shape {image.shape}")
        if image.dtype != np.uint8:
            raise ValueError(f"a numpy image must be uint8, not {image.dtype}")
        if image.ndim == 2:
            return Image.fromarray(np.ascontiguousarray(image), "L").convert("RGB")
        if image.ndim == 3 and image.shape[2] in (3, 4):
            if bgr:
                image = image[..., [2, 1, 0, 3][:image.shape[2]]]
            return as_rgb(Image.fromarray(np.ascontiguousarray(image), "RGB" if image.shape[2] == 3 else "RGBA"))
        raise ValueError(f"a numpy image must be (H, W), (H, W, 3) or (H, W, 4), not {image.shape}")
    raise TypeError(f"an image must be a path, a PIL image or a numpy array, not {type(image).__name__}")
