"""OpenCV's DIS optical flow: the CPU backend that needs no weights.

The preset was chosen by measurement on Middlebury RubberWhale (584x388, ground-truth ``.flo``)
through this backend on a shared 2-core CPU (rates vary by about a third with load): average
end-point error, then pairs per second at 584x388 and at 256x256:
ULTRAFAST 0.54 px, 220-435 and 940-1490; FAST 0.44 px, 145-230 and 400-690;
MEDIUM 0.23 px, 41-53 and 134-183.
MEDIUM halves FAST's error and still outruns decoding: the four source frames behind each
sampled pair (stride 4) decode at about 25-40 pairs/s from 720p-1080p video on the same CPU.
"""

from __future__ import annotations

import cv2
import numpy as np

from timelapse_d.flow.frames import check_frames

PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
DEFAULT_PRESET = "medium"


class DISBackend:
    """DIS flow on grey levels, one pair at a time, on the CPU."""

    name = "dis"

    def __init__(self, preset: str = DEFAULT_PRESET) -> None:
        if preset not in PRESETS:
            raise ValueError(f"unknown DIS preset {preset!r}; choose one of {', '.join(PRESETS)}")
        self.preset = preset
        self._dis = cv2.DISOpticalFlow.create(PRESETS[preset])

    def backward_flow(self, previous: np.ndarray, following: np.ndarray) -> np.ndarray:
        check_frames(previous, following)
        n, h, w = previous.shape[:3]
        flow = np.empty((n, 2, h, w), dtype=np.float32)
        for i in range(n):
            # calc(I0, I1) gives I0(p) ~= I1(p + F): I0 is the frame the flow lives on.
            fixed = cv2.cvtColor(following[i], cv2.COLOR_RGB2GRAY)
            moving = cv2.cvtColor(previous[i], cv2.COLOR_RGB2GRAY)
            # OpenCV's stubs refuse flow=None, which allocates the output.
            flow[i] = self._dis.calc(fixed, moving, None).transpose(2, 0, 1)  # type: ignore[call-overload]
        return flow
