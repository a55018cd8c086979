"""Half precision without a GPU: the step under CPU fp16 autocast (the same casts CUDA's
autocast makes for convolutions) keeps its gradient where fp16 would flush it, and the
objectives are computed in fp32 outside autocast."""
from __future__ import annotations

import torch

from live.dream import objectives as obj
from live.dream.step import DreamStep, LayerTap, loss_scale, make_step


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.double().flatten(), b.double().flatten(), dim=0))


def test_fp16_gradient_at_a_shallow_layer_of_a_large_picture_stays_finite_and_close_to_fp32(backbone):
    """stem at 1280x960: 9.8 million activations, each one's share of the mean's gradient
    (~1e-7) is below fp16's normal range. Unscaled, about 1% of the picture's gradient
    came back exactly zero; scaled, as few as in fp32 (none)."""
    x = torch.rand(1, 3, 960, 1280, generator=torch.Generator().manual_seed(0))
    x = x.contiguous(memory_format=torch.channels_last)
    ref, half = make_step(backbone, "stem"), make_step(backbone, "stem", autocast_dtype=torch.float16)
    try:
        g32, g16 = ref.raw_gradient(x), half.raw_gradient(x)
        acts = half.tap(x)
    finally:
        ref.close()
        half.close()
    assert acts["stem"].numel() == 32 * 480 * 640 and loss_scale(acts, torch.float16) == 2.0 ** 19
    assert g16.dtype == torch.float32 and bool(torch.isfinite(g16).all())
    assert float((g16 == 0).float().mean()) < 1e-3
    assert cosine(g16, g32) > 0.999
    assert float((g16 - g32).norm() / g32.norm()) < 0.05    # the scale was divided out again


def test_fp16_class_dream_from_the_logits_does_not_overflow(backbone):
    """The other end: one logit (a mean over one value) at a small size, full network."""
    x = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    ref = make_step(backbone, "blocks.10", "class:banana")
    half = make_step(backbone, "blocks.10", "class:banana", autocast_dtype=torch.float16)
    try:
        g32, g16 = ref.raw_gradient(x), half.raw_gradient(x)
    finally:
        ref.close()
        half.close()
    assert bool(torch.isfinite(g16).all()) and cosine(g16, g32) > 0.97   # measured 0.984: fp16 through the whole network


def test_loss_scale_only_for_fp16():
    acts = {"a": torch.zeros(1, 16, 10, 10)}
    assert loss_scale(acts, None) == 1.0 and loss_scale(acts, torch.bfloat16) == 1.0
    assert loss_scale(acts, torch.float16) == 2.0 ** 6   # 1600 values -> 1600/16 rounded down to a power of two


def test_objectives_run_in_fp32_outside_autocast(backbone, photo):
    """Only the network runs under autocast. A guide whose feature dot products exceed
    fp16's largest number (65504) is an ordinary number outside autocast, inf inside it
    (where the engine would then call the dream non-finite)."""
    x = torch.from_numpy(photo).permute(2, 0, 1)[None].float().div(255.0)
    tap = LayerTap(backbone, ("blocks.10",))
    try:
        with torch.no_grad():
            features = tap(x)["blocks.10"]
        seen: list[bool] = []
        guide = obj.guide("blocks.10", features)
        watched = obj.Objective(lambda a: (seen.append(torch.is_autocast_enabled("cpu")), guide(a))[1],
                                guide.layers, "watched guide")
        g = DreamStep(tap, watched, autocast_dtype=torch.float16).raw_gradient(x)
        loud = DreamStep(tap, obj.guide("blocks.10", features * 100.0), autocast_dtype=torch.float16)
        value = loud.value(x)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.float16):
            inside = loud.objective(tap(x))   # the same objective computed under autocast
    finally:
        tap.close()
    assert seen == [False]
    assert bool(torch.isfinite(g).all()) and float(g.abs().mean()) > 0
    assert 65504 < value < float("inf") and not bool(torch.isfinite(inside))
