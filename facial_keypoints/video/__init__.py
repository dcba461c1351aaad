"""Video: frames in, faces with stable ids out.

``frames`` reads a file or a camera with the stream's own timestamps; ``tracking`` follows faces
from frame to frame (the face detector now and then, the keypoints' own box in between);
``smoothing`` filters their points (the head's motion and the face's shape apart); ``annotate``
writes a video's JSON lines, CSV and annotated mp4, whole or not at all.
"""
