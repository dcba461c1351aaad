"""Facial keypoint detection: 21 points on face crops, in three stages.

The stage scripts (stage1/, stage2/, stage3/) are thin command lines over this
package; ``python -m facial_keypoints`` holds the commands that work on any
checkpoint (evaluate, ...).
"""
__version__ = "0.1.0"
