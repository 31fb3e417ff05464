"""Classical optical flow (OpenCV DIS) and warping helpers shared by the temporal metrics."""
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


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward-warp `image` with `flow` (sample image at x + flow(x)); bilinear, border replicate."""
    import cv2

    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
