"""Shared fixtures: the real packaged network (loaded once) and synthetic pictures.
Tests never read ../shared: users who clone the project do not have it."""
from __future__ import annotations

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import numpy as np
import pytest
import torch

import models

torch.set_num_threads(max(1, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def backbone() -> models.Backbone:
    return models.load("efficientnet_lite0", device="cpu")


def natural_image(width: int = 320, height: int = 240, seed: int = 0) -> np.ndarray:
    """A photo-like test picture: 1/f colour noise (the spectrum of natural images) with
    a few soft shapes, so the network sees edges and textures rather than flat colour."""
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
    tint = rng.uniform(0.3, 0.7, size=3)
    img = tint + 0.18 * light[..., None] + 0.06 * np.stack([plane(2.0) for _ in range(3)], -1)
    yy, xx = np.mgrid[0:height, 0:width]
    for _ in range(4):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        r = rng.uniform(0.1, 0.3) * min(width, height)
        mask = ((yy - cy) ** 2 + (xx - cx) ** 2) < r ** 2
        img[mask] = img[mask] * 0.5 + rng.uniform(0, 1, size=3) * 0.5
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


@pytest.fixture
def photo() -> np.ndarray:
    return natural_image()
