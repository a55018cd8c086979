"""The gradient normalisations: how much of a step lands in the finest band decides how
crisp the dream's strokes can be at a working size near the screen's (docs/gpu.md)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from live.dream.prior import AUTO_MIXED_GAIN, GRAD_NORMS, normalize_grad


def top_band_share(g: torch.Tensor) -> float:
    """Share of g's energy finer than half its size holds."""
    low = F.interpolate(F.avg_pool2d(g, 2), size=g.shape[-2:], mode="bilinear", align_corners=False)
    return float((g - low).pow(2).sum() / g.pow(2).sum())


def test_mixed_keeps_more_of_the_fine_band_than_laplacian_and_less_than_mean():
    torch.manual_seed(0)
    fine = torch.randn(1, 3, 96, 128)                       # a network's pixel-scale gradient ...
    broad = F.interpolate(torch.randn(1, 3, 12, 16), size=(96, 128), mode="bilinear", align_corners=False)
    g = fine + 0.3 * broad                                  # ... over a broad part
    share = {how: top_band_share(normalize_grad(g, how)) for how in GRAD_NORMS if how != "auto"}
    assert share["laplacian"] + 0.05 < share["mixed"] < share["mean"] - 0.05, share
    for how in ("mean", "laplacian", "mixed"):              # the step size stays in picture units
        assert abs(float(normalize_grad(g, how).abs().mean()) - 1.0) < 1e-4


def test_auto_is_laplacian_at_a_cpus_size_and_mixed_near_a_screens():
    """"auto" decides by the picture's width, so a step traced at one size keeps its choice;
    mixed with the larger step that gives it the laplacian's depth."""
    torch.manual_seed(1)
    for w, same, gain in ((320, "laplacian", 1.0), (368, "laplacian", 1.0), (640, "mixed", AUTO_MIXED_GAIN),
                          (736, "mixed", AUTO_MIXED_GAIN)):
        g = torch.randn(1, 3, w * 3 // 4, w)
        assert torch.allclose(normalize_grad(g, "auto"), normalize_grad(g, same) * gain), w
    assert 1.1 < AUTO_MIXED_GAIN < 1.25


def test_the_pyramids_resizes_are_the_bilinear_resize_and_the_blurred_decimation():
    """The Laplacian pyramid's levels are computed as (transposed) convolutions, which
    OpenVINO runs faster than its Interpolate: they must be the same numbers as the plain
    definitions, a doubling and any other size alike, and on odd sizes."""
    from kornia.filters import filter2d_separable

    from live.dream.prior import _blur_down, _upsample
    torch.manual_seed(2)
    binomial = torch.tensor([[1.0, 4.0, 6.0, 4.0, 1.0]]) / 16.0
    for h, w in ((30, 40), (21, 37), (9, 8)):
        x = torch.randn(1, 3, h, w)
        for size in ((2 * h, 2 * w), (2 * h - 1, 2 * w - 1)):
            want = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            assert torch.allclose(_upsample(x, torch.Size(size)), want, atol=1e-5), (h, w, size)
        want = filter2d_separable(x, binomial, binomial, border_type="replicate")[:, :, ::2, ::2]
        assert torch.allclose(_blur_down(x), want, atol=1e-5), (h, w)
