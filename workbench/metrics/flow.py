"""Classical optical flow (OpenCV DIS), one instance per thread, shared by the temporal metrics."""
from __future__ import annotations

import threading

import numpy as np

_local = threading.local()


def _dis():
    import cv2

    if getattr(_local, "dis", None) is None:
        _local.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    return _local.dis


def dis_flow(a_gray: np.ndarray, b_gray: np.ndarray) -> np.ndarray:
    """Dense flow a -> b (H, W, 2) float32 in pixels: a(x) corresponds to b(x + flow(x))."""
    return _dis().calc(a_gray, b_gray, None)

