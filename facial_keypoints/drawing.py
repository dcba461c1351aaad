"""Points and faces drawn on pictures (PIL only): the crops of the course, the predictions' sheets,
the photos and video frames ``predict`` annotates, and ``draw_faces`` for anyone's own image."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from facial_keypoints.keypoints import SKELETON


def draw_points(image: Image.Image, keypoints, color=(0, 255, 0), radius: float = 2.0,
                skeleton: bool = True, numbers: bool = False) -> Image.Image:
    """Draw (21, 2) points (in the image's pixels) on an RGB copy of ``image``."""
    image = image.convert("RGB")
    draw = ImageDraw.Draw(image)
    points = np.asarray(keypoints, dtype=np.float64)
    if skeleton:
        for a, b in SKELETON:
            draw.line([tuple(points[a]), tuple(points[b])], fill=color, width=1)
    for i, (x, y) in enumerate(points):
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=color)
        if numbers:
            draw.text((x + radius, y - 3 * radius), str(i), fill=(255, 255, 0))
    return image


def grid(images: list[Image.Image], columns: int = 4) -> Image.Image:
    width = max(i.width for i in images)
    height = max(i.height for i in images)
    rows = (len(images) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * width, rows * height))
    for n, image in enumerate(images):
        sheet.paste(image, ((n % columns) * width, (n // columns) * height))
    return sheet


def draw_faces(image: Image.Image, faces) -> Image.Image:
    """``image`` with ``faces`` drawn: accepted faces (green box, points) and rejected candidates (thin
    red box, score); a face is anything with ``box``, ``score``, ``keypoints`` and ``is_face``."""
    canvas = image.copy()
    line = max(1, round(max(image.size) / 500))
    for face in faces:
        if not face.is_face:
            ImageDraw.Draw(canvas).rectangle([float(v) for v in face.box], outline=(230, 40, 40), width=line)
            ImageDraw.Draw(canvas).text((float(face.box[0]), float(face.box[3]) + 2), f"{face.score:.2f}",
                                        fill=(230, 40, 40))
    for face in (f for f in faces if f.is_face):
        ImageDraw.Draw(canvas).rectangle([float(v) for v in face.box], outline=(40, 220, 40), width=line)
        radius = max(1.5, float(np.sqrt(np.prod(face.box[2:] - face.box[:2]))) / 60)
        canvas = draw_points(canvas, face.keypoints, color=(40, 255, 40), radius=radius)
    return canvas
