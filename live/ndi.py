"""Video out for VJ software: the composed picture as an NDI source (cyndilib, which carries
its own NDI runtime), so Resolume, TouchDesigner or OBS take it like a camera. Optional:
without cyndilib, `[output] ndi = true` is one log line and the show goes on. Sent as
every video out is (live/video_out.py); while no receiver is connected nothing is copied
or sent (the source stays listed)."""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from .video_out import FrameOutput, OutputUnavailable, Sink


class _NdiSink(Sink):
    def __init__(self, name: str, w: int, h: int, fps: float):
        from cyndilib import FourCC
        from cyndilib.sender import Sender
        from cyndilib.video_frame import VideoSendFrame
        self.sender = Sender(name)
        vf = VideoSendFrame()
        vf.set_resolution(w, h)
        vf.set_frame_rate(Fraction(fps).limit_denominator(1001))
        vf.set_fourcc(FourCC.BGRA)
        self.sender.set_video_frame(vf)

    def __enter__(self) -> "_NdiSink":
        self.sender.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.sender.__exit__(*exc)

    def watched(self) -> bool:
        return self.sender.get_num_connections(0) > 0

    def send(self, frame: np.ndarray) -> None:
        self.sender.write_video(frame.ravel())


class NdiOutput(FrameOutput):
    pixel, kind = "BGRA", "NDI source"

    def __init__(self, name: str, fps: float = 30.0):
        try:
            import cyndilib  # noqa: F401  (the NDI runtime comes with it)
        except ImportError as exc:
            raise OutputUnavailable(f"NDI output needs cyndilib ({exc}); pip install cyndilib") from None
        super().__init__(name, fps)

    def open(self, w: int, h: int) -> Sink:
        return _NdiSink(self.name, w, h, self.fps)
