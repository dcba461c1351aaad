"""libfacedetection's YuNet, called in the library that the ``yuface`` wheel ships, with a result buffer
that Python owns.

``yuface.detect`` mallocs a 36 KB result buffer on every call and never frees it (its binding copies
the faces out and drops the pointer), so a long-running process grows by that much per photo. The
wheel also ships the C++ library itself, whose one entry point takes the buffer as an argument:

    int *facedetect_cnn(unsigned char *result_buffer, unsigned char *bgr, int width, int height, int step)

It is called here through ctypes (the wheel has no other way in). The buffer holds an int32 face count,
then 16 int16 values per face: the confidence in percent, the box (x, y, w, h) and five landmarks.

libfacedetection runs on OpenMP (the wheel's own libgomp), whose threads spin a while before they
sleep by default. Beside any other busy thread or program (the video writer, a second worker, a
shared machine) a spinning thread holds a core the others need, and a detection took twice as long
beside one busy process (benchmarks/yunet_threads.py); so the library is loaded with
``OMP_WAIT_POLICY=PASSIVE`` unless the environment says otherwise, and ``threads`` sets its thread
count.
"""
from __future__ import annotations

import ctypes
import os

import numpy as np

RESULT_BYTES = 0x9000  # the size libfacedetection's own examples and yuface's binding allocate
FACE_VALUES = 16
MAX_FACES = (RESULT_BYTES - 4) // (2 * FACE_VALUES)


def load_facedetect_cnn():
    """The C function from the yuface wheel's library (``ImportError`` where yuface is absent)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read once, when libgomp loads just below
    import yuface  # importing the binding first loads the library's own libgomp from yuface.libs

    folder = os.path.dirname(yuface.__file__)
    names = sorted(name for name in os.listdir(folder) if name.startswith("libfacedetection.so"))
    if not names:
        raise ImportError(f"yuface at {folder} has no libfacedetection library")
    # PyDLL keeps the GIL through the call, as yuface's binding does: libfacedetection sets up its
    # weights on the first call without a lock, so two threads must not enter it together.
    library = ctypes.PyDLL(os.path.join(folder, names[0]))
    function = library["_Z14facedetect_cnnPhS_iii"]  # C++ linkage: the mangled name of facedetect_cnn
    function.restype = ctypes.c_void_p
    function.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
    return function


def set_threads(threads: int) -> None:
    """OpenMP threads for the detections this thread starts (the wheel's libgomp's own setting)."""
    import glob

    import yuface
    libraries = glob.glob(os.path.join(os.path.dirname(yuface.__file__) + ".libs", "libgomp*"))
    if libraries:  # a wheel without its own libgomp uses the process's, which keeps its setting
        ctypes.CDLL(libraries[0]).omp_set_num_threads(int(threads))


class YuNet:
    """``YuNet(threads)(bgr)``: an (N, 16) int16 array, one row per face, as ``yuface.detect``'s raw result.
    ``threads``: OpenMP threads (None: OpenMP's default, a thread per core)."""

    def __init__(self, threads: int | None = None):
        self.function = load_facedetect_cnn()
        self.buffer = np.zeros(RESULT_BYTES, dtype=np.uint8)  # reused: one call at a time (see PyDLL)
        if threads:
            set_threads(threads)

    def __call__(self, bgr: np.ndarray) -> np.ndarray:
        if bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3:
            raise ValueError(f"YuNet takes an (H, W, 3) uint8 BGR image, not {bgr.dtype} {bgr.shape}")
        bgr = np.ascontiguousarray(bgr)
        height, width = bgr.shape[:2]
        result = self.function(self.buffer.ctypes.data, bgr.ctypes.data, width, height, width * 3)
        if result != self.buffer.ctypes.data:
            raise RuntimeError("libfacedetection returned no result")
        count = int(self.buffer[:4].view(np.int32)[0])
        if not 0 <= count <= MAX_FACES:
            raise RuntimeError(f"libfacedetection returned {count} faces")
        return self.buffer[4:4 + count * 2 * FACE_VALUES].view(np.int16).reshape(count, FACE_VALUES).copy()
