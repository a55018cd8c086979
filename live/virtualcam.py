"""Video out as a webcam (pyvirtualcam over v4l2loopback on Linux, OBS's virtual camera
elsewhere): Zoom, a browser, OBS or TouchDesigner take the dream as a camera. Optional:
no pyvirtualcam or no loopback device (`sudo modprobe v4l2loopback exclusive_caps=1`) is
one log line at start and the show goes on. Sent as every video out is (live/video_out.py)."""
from __future__ import annotations

import numpy as np

from .video_out import FrameOutput, OutputUnavailable, Sink

PROBE_SIZE = (64, 64)       # a camera opened and closed at start, so a missing device is said at once


def _pyvirtualcam():
    try:
        import pyvirtualcam
    except ImportError as exc:
        raise OutputUnavailable(f"the virtual camera needs pyvirtualcam ({exc}); pip install pyvirtualcam") from None
    return pyvirtualcam


def _camera(device: str, w: int, h: int, fps: float):
    pvc = _pyvirtualcam()
    try:
        return pvc.Camera(width=w, height=h, fps=fps, fmt=pvc.PixelFormat.RGB, device=device or None)
    except (RuntimeError, OSError, ValueError) as exc:
        where = f" '{device}'" if device else ""
        raise OutputUnavailable(f"no virtual camera{where} ({str(exc).splitlines()[0]})") from None


class _CameraSink(Sink):
    def __init__(self, camera):
        self.camera = camera

    def __exit__(self, *exc) -> None:
        self.camera.close()

    def send(self, frame: np.ndarray) -> None:
        self.camera.send(frame)


class VirtualCamera(FrameOutput):
    pixel, kind = "RGB", "virtual camera"

    def __init__(self, device: str, fps: float = 30.0):
        _camera(device, *PROBE_SIZE, fps).close()
        super().__init__(device or "virtual camera", fps)
        self.device = device

    def open(self, w: int, h: int) -> Sink:
        cam = _camera(self.device, w, h, self.fps)
        self.name = cam.device
        return _CameraSink(cam)
