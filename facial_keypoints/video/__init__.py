"""Video: frames in, faces with stable ids out.

``frames`` reads a file or a camera with the stream's own timestamps; ``tracking`` follows faces
from frame to frame (the face detector now and then, the keypoints' own box in between);
``smoothing`` is the One-Euro filter on their points; ``annotate`` writes a video's JSON lines, CSV
and annotated mp4, whole or not at all.
"""
