import logging

import numpy as np
import pytest
import torch

from live.dream import DreamEngine
from live.dream.images import to_tensor
from live.dream.objectives import ObjectiveError

SIZE = (160, 120)


def engine(backbone, **kw) -> DreamEngine:
    kw.setdefault("size", SIZE)
    kw.setdefault("precision", "fp32")
    kw.setdefault("backend", "torch")
    kw.setdefault("seed", 0)
    return DreamEngine(backbone, **kw)


def test_output_is_uint8_at_working_size_for_any_input(backbone, photo):
    eng = engine(backbone)
    for frame in (photo, photo[:100, :77], np.zeros((480, 640, 3), np.uint8)):
        out = eng.dream(frame)
        assert out.dtype == np.uint8 and out.shape == (SIZE[1], SIZE[0], 3)


def test_amplify_raises_the_layer_severalfold_but_keeps_the_picture(backbone, photo):
    eng = engine(backbone, layer="blocks.10")
    before = eng.objective_value(photo)
    out = photo
    for _ in range(20):
        out = eng.dream(photo)
    after = eng.objective_value(out)
    assert after > 3 * before
    base = to_tensor(photo, backbone.device, SIZE)[0].permute(1, 2, 0).numpy() * 255
    diff = np.abs(out.astype(float) - base)
    assert 2 < diff.mean() < 40  # visibly dreamed, still the picture
    corr = np.corrcoef(out.astype(float).ravel(), base.ravel())[0, 1]
    assert corr > 0.7


def _banana_probability(backbone, img: np.ndarray) -> float:
    x = to_tensor(img, backbone.device, (224, 224))
    with torch.no_grad():
        return float(backbone.net(backbone.normalize(x)).softmax(1)[0, 954])


def test_class_objective_raises_banana_probability(backbone, photo):
    eng = engine(backbone, size=(224, 224), objective="class:banana", strength=0.02, decay=1.0)
    before = _banana_probability(backbone, photo)
    out = photo
    for _ in range(15):
        out = eng.dream(photo)
    after = _banana_probability(backbone, out)
    assert after > 0.5 and after > 20 * before


def test_channel_objective_raises_that_channel(backbone, photo):
    eng = engine(backbone, layer="blocks.6", objective="channel:7", decay=1.0)
    before = eng.objective_value(photo)
    out = photo
    for _ in range(10):
        out = eng.dream(photo)
    assert eng.objective_value(out) > before + 1.0


@pytest.fixture
def count_calls():
    """count_calls(module) -> a list that grows by one per forward call of the module."""
    handles = []

    def count(module: torch.nn.Module) -> list:
        calls = []
        handles.append(module.register_forward_hook(lambda *a: calls.append(1)))
        return calls

    yield count
    for h in handles:
        h.remove()


def test_forward_stops_at_the_target_layer(backbone, photo, count_calls):
    eng = engine(backbone, layer="blocks.7")
    above = count_calls(backbone.module("blocks.8"))
    head = count_calls(backbone.module("head"))
    target = count_calls(backbone.module("blocks.7"))
    eng.dream(photo)
    eng.dream(photo)
    assert len(target) == 2 and not above and not head
    eng.configure(objective="class:banana")  # class objectives need the whole network
    eng.dream(photo)
    assert len(head) == 1


def test_hooks_are_registered_once_and_move_with_the_layer(backbone, photo):
    eng = engine(backbone, layer="blocks.5")
    net = backbone.net
    mod5, mod9 = backbone.module("blocks.5"), backbone.module("blocks.9")
    eng.dream(photo)
    n5, n9 = len(mod5._forward_hooks), len(mod9._forward_hooks)
    for _ in range(3):
        eng.dream(photo)
    assert len(mod5._forward_hooks) == n5
    eng.configure(layer="blocks.9", strength=0.02, size=(128, 96))
    out = eng.dream(photo)
    assert out.shape == (96, 128, 3)
    assert len(mod5._forward_hooks) == n5 - 1 and len(mod9._forward_hooks) == n9 + 1
    assert backbone.net is net  # never rebuilt


def test_a_new_normalisation_or_backend_keeps_the_hooks(backbone, photo):
    """The hooks depend on the layers only: adaptive quality crossing the width where
    "auto" turns from mixed to laplacian, or another backend, builds another step on the
    same hooks instead of removing and registering them again."""
    eng = engine(backbone, layer="blocks.5", grad_norm="auto", size=(512, 384), tile=(256, 192))
    hooks = backbone.module("blocks.5")._forward_hooks
    try:
        eng.dream(photo)
        ids = list(hooks)
        eng.configure(size=(448, 336))          # mixed -> laplacian (resolve_norm by the working width)
        eng.dream(photo)
        eng.configure(precision="bf16")
        eng.dream(photo)
        assert list(hooks) == ids
    finally:
        eng.close()


def test_non_finite_values_reset_the_residual_and_log_once(backbone, photo, caplog):
    eng = engine(backbone)
    caplog.set_level(logging.WARNING)
    for _ in range(2):
        eng.dream(photo)
        eng.residual = torch.full_like(eng.residual, float("nan"))
        out = eng.dream(photo)
        assert np.isfinite(out).all()
        assert eng.residual is None
    assert sum("non-finite" in r.message for r in caplog.records) == 1


def test_reset_forgets_the_carried_dream(backbone, photo):
    eng = engine(backbone)
    eng.dream(photo)
    assert eng.residual is not None
    eng.reset()
    assert eng.residual is None


@pytest.mark.parametrize("settings", [{"precision": "bf16"}, {"grad_norm": "laplacian"}, {"grad_norm": "mixed"},
                                      {"objective": "blocks.4:3 + 0.5*amplify"}, {"decorrelate": 0.0},
                                      {"decorrelate": 2.0}])
def test_variants_dream(backbone, photo, settings):
    eng = engine(backbone, layer="blocks.8", **settings)
    before = eng.objective_value(photo)
    out = photo
    for _ in range(5):
        out = eng.dream(photo)
    assert eng.objective_value(out) > before


def test_decorrelated_steps_keep_their_size_and_move_colours_together(backbone, photo):
    """[dream] decorrelate: the step's change with natural images' colour correlation, the
    same mean size; its channels agree more (luminance and natural hues, not rainbow)."""
    def change(d):
        eng = engine(backbone, layer="blocks.8", decorrelate=d, jitter=0, seed=1)
        x = to_tensor(photo, eng.device, eng.size)
        return eng.run_steps(x, 1) - x

    raw, decorrelated = change(0.0), change(1.0)
    assert decorrelated.abs().mean() == pytest.approx(raw.abs().mean().item(), rel=0.05)   # clamping aside

    def chroma(d):   # the change's colour spread over its size
        return float((d - d.mean(1, keepdim=True)).abs().mean() / d.abs().mean())
    assert chroma(decorrelated) < 0.8 * chroma(raw)


@pytest.mark.parametrize("bad", [{"layer": "blocks.99"}, {"objective": "bananas:3"},
                                 {"objective": "class:no such thing"}, {"precision": "fp8"},
                                 {"size": (8, 8)}, {"objective": "channel:x"}, {"decorrelate": 3.0}])
def test_bad_settings_are_refused(backbone, bad):
    with pytest.raises((ValueError, ObjectiveError)):
        engine(backbone, **bad)


def test_closed_engines_leave_no_hooks(backbone, photo):
    mod = backbone.module("blocks.3")
    n = len(mod._forward_hooks)
    eng = engine(backbone, layer="blocks.3")
    eng.dream(photo)
    assert len(mod._forward_hooks) == n + 1
    eng.close()
    assert len(mod._forward_hooks) == n
    eng.dream(photo)  # usable again after close
    del eng
    import gc
    gc.collect()
    assert len(mod._forward_hooks) == n


def test_shrinking_by_halves_first_is_still_an_area_average():
    """images.shrink (2x2 means first, OpenCV's fast path) against one area resize: the
    same picture within a grey level on average, and a bright spot stays where it was."""
    import cv2
    from live.dream.images import natural_picture, shrink
    big = cv2.resize(natural_picture(320, 180), (1280, 720), interpolation=cv2.INTER_CUBIC)
    for size in ((368, 208), (736, 416)):   # halves, then a fraction of a halving
        got, want = shrink(big, size).astype(float), cv2.resize(big, size, interpolation=cv2.INTER_AREA)
        assert got.shape == want.shape and np.abs(got - want).mean() < 1.0, size
    spot = np.zeros((720, 1280), np.uint8)
    spot[400:410, 900:910] = 255
    for w, h in ((368, 208), (736, 416)):
        ys, xs = np.mgrid[0:h, 0:w]

        def centre(img: np.ndarray) -> tuple[float, float]:
            img = img.astype(float)
            return (img * xs).sum() / img.sum(), (img * ys).sum() / img.sum()
        (x1, y1) = centre(shrink(spot, (w, h)))
        (x2, y2) = centre(cv2.resize(spot, (w, h), interpolation=cv2.INTER_AREA))
        assert abs(x1 - x2) < 0.1 and abs(y1 - y2) < 0.1, (x1, x2, y1, y2)   # a linear resample's phase: 0.08 px


def test_times_map_is_the_broadcast_product_exactly():
    """images.times_map (OpenCV on merged channels, for speed) gives numpy's product bit for bit."""
    from live.dream.images import times_map
    rng = np.random.default_rng(0)
    m = rng.random((48, 64), dtype=np.float32)
    for c in (1, 3, 4):
        img = rng.standard_normal((48, 64, c)).astype(np.float32)
        assert np.array_equal(times_map(img, m), img * m[..., None]), c
    flat = rng.standard_normal((48, 64)).astype(np.float32)
    assert np.array_equal(times_map(flat, m), flat * m)
