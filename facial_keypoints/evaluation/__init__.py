"""Measuring a model: one inference pass over a list's crops, the keypoint and classifier metrics
(``nme_io``, ``nme_box``, failure rate, AUC), the cumulative error curve and the validation pool
of faces and non-faces the face decision is chosen on. Used by ``facial-keypoints evaluate``, the
course's test phases and the benchmarks.
"""
