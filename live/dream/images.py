"""Pictures in and out of the dream: uint8 RGB arrays <-> tensors, resizing, the zoom of
the endless-zoom feedback, and the start pictures made from nothing (noise, a 1/f
"natural" picture). One copy of each, shared by the live dreamer and the offline tools."""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .gpu import upload


def jpeg(rgb: np.ndarray, quality: int = 75) -> bytes:
    """uint8 RGB as JPEG bytes (the remote's preview, visitors' souvenirs)."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def fit_aspect(size: tuple[int, int], aspect: float) -> tuple[int, int]:
    """The working size with `size`'s pixel count (the compute budget) and the picture's
    aspect (width / height), each side a multiple of 8 and at least 32."""
    w = math.sqrt(size[0] * size[1] * aspect)
    return max(32, int(round(w / 8)) * 8), max(32, int(round(w / aspect / 8)) * 8)


def resize_image(img: np.ndarray, size: tuple[int, int], interpolation: int | None = None) -> np.ndarray:
    """A picture or map to (w, h), the same array when it is that size already. By default
    area-averaged when shrinking (no aliasing), linear up; cubic keeps signed dream detail crisp."""
    w, h = size
    if img.shape[1] == w and img.shape[0] == h:
        return img
    if interpolation is None and img.shape[1] > w:
        return shrink(img, size)
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR if interpolation is None else interpolation)


def shrink(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Down to (w, h) without aliasing, halving first by exact 2x2 means while the picture
    is at least twice as large: OpenCV's fast path. A 1280x720 frame to 368x208 took 3.5 ms
    in one area resize, 1.5 ms so (the display and the dream thread shrink every frame).
    The rest, less than 2x, is a Gaussian as wide as the area's box (sigma = ratio /
    sqrt(12)) and a linear resize: OpenCV's area resize by a fraction is its slow path
    (1280x720 to 736x416: 5 ms, so 1.8 ms; 54 dB from it on a frame of pedestrians.mp4)."""
    w, h = size
    while img.shape[1] >= 2 * w and img.shape[0] >= 2 * h:
        img = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
    if img.shape[1] == w and img.shape[0] == h:
        return img
    rx, ry = img.shape[1] / w, img.shape[0] / h
    if rx >= 1.0 and ry >= 1.0:
        img = cv2.GaussianBlur(img, (0, 0), rx / math.sqrt(12.0), sigmaY=ry / math.sqrt(12.0))
        return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)


def times_map(img: np.ndarray, m: np.ndarray) -> np.ndarray:
    """A float32 h x w x c picture times an h x w map, pixel by pixel. OpenCV on the map
    merged to c channels: numpy's broadcast over the last axis took 1-2 ms at 736x416x3
    (the carried dream, the overlay and the denoiser each do it every frame), this 0.4."""
    m = m.astype(img.dtype, copy=False)
    if img.ndim == 2 or img.shape[2] == 1:
        return cv2.multiply(img.reshape(m.shape), m).reshape(img.shape)
    return cv2.multiply(img, cv2.merge([m] * img.shape[2]))


def to_tensor(img: np.ndarray, device: torch.device, size: tuple[int, int] | None = None) -> torch.Tensor:
    """uint8 HxWx3 RGB -> (1,3,h,w) float in [0,1] on `device` (resized to `size` if given),
    channels_last like the networks' weights."""
    if size is not None:
        img = resize_image(img, size)
    t = upload(img, device)  # on CUDA: pinned, asynchronous
    return t.permute(2, 0, 1).unsqueeze(0).float().div_(255.0).contiguous(memory_format=torch.channels_last)


def to_image(x: torch.Tensor) -> np.ndarray:
    """(1,3,h,w) in [0,1] -> uint8 h x w x 3 RGB on the host (the one copy out)."""
    return x[0].mul(255.0).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous().cpu().numpy()


def to_image_checked(x: torch.Tensor) -> tuple[np.ndarray, bool]:
    """to_image(x), and whether x was finite everywhere, in one copy to the host: on CUDA
    asking the second question separately would be a second wait for the device. A sum is
    finite exactly when every value is (a NaN or an infinity carries through it; values of
    a picture cannot overflow it): 0.2 ms at 736x416 on the CPU, isfinite().all() 2 ms."""
    finite = torch.isfinite(x.sum(dtype=torch.float32)).to(torch.uint8).reshape(1)
    img = x[0].mul(255.0).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous()
    packed = torch.cat((img.reshape(-1), finite)).cpu().numpy()
    return packed[:-1].reshape(img.shape), bool(packed[-1])


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(1,3,h,w) tensor -> (1,3,H,W) for size (H, W); antialiased when shrinking."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)


def zoom(img: np.ndarray, factor: float, angle: float = 0.0) -> np.ndarray:
    """The picture magnified by `factor` about its centre and turned by `angle` degrees
    (one pass of the endless zoom). Bicubic: it is applied again and again, and linear
    resampling would blur the picture away."""
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle, factor)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def feed_back(previous: np.ndarray, factor: float = 1.0, angle: float = 0.0,
              current: np.ndarray | None = None, weight: float = 1.0) -> np.ndarray:
    """The one feedback of the endless zoom (the z key, attract mode, tools.dream's zoom
    videos): the previous dream zoomed by `factor` and turned by `angle`, crossfaded over
    `current` by `weight` (no `current`, or weight 1: the fed-back dream alone)."""
    fed = zoom(previous, factor, angle) if (factor != 1.0 or angle) else previous
    if current is None or weight >= 1.0:
        return fed
    mixed = current.astype(np.float32) * (1.0 - weight) + fed.astype(np.float32) * weight
    return (mixed + 0.5).astype(np.uint8)


def noise(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A grey picture with faint coloured noise: the network's own picture grows on it."""
    rng = np.random.default_rng(seed)
    img = 0.5 + 0.08 * rng.standard_normal((height, width, 3))
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def natural_picture(width: int = 320, height: int = 240, seed: int = 0) -> np.ndarray:
    """A photo-like picture made from nothing: 1/f colour noise (the spectrum of natural
    images) with a few soft discs, so the network sees edges and texture everywhere."""
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.fftfreq(width)[None, :]
    radius = np.sqrt(fx ** 2 + fy ** 2)
    radius[0, 0] = 1.0

    def plane(power: float) -> np.ndarray:
        spectrum = (rng.normal(size=(height, width)) + 1j * rng.normal(size=(height, width))) / radius ** power
        p = np.real(np.fft.ifft2(spectrum))
        return (p - p.mean()) / (p.std() + 1e-8)

    light = plane(1.6)  # shared luminance, the way real scenes vary
    img = rng.uniform(0.3, 0.7, size=3) + 0.18 * light[..., None] + 0.06 * np.stack([plane(2.0) for _ in range(3)], -1)
    yy, xx = np.mgrid[0:height, 0:width]
    for _ in range(max(4, width * height // 60000)):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        r = rng.uniform(0.1, 0.3) * min(width, height)
        mask = ((yy - cy) ** 2 + (xx - cx) ** 2) < r ** 2
        img[mask] = img[mask] * 0.5 + rng.uniform(0, 1, size=3) * 0.5
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)
