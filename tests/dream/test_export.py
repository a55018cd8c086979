"""The exported ONNX dream step against the PyTorch step, and the export CLI.
Numbers only: no timing assertions (the machine is shared)."""
from __future__ import annotations

import pytest
import torch

import models

from conftest import ONNX_LAYER as LAYER, ONNX_NORM as NORM, ONNX_SIZE as SIZE
from live.cli import run
from live.dream.backends import cache, validate
from live.dream.backends import onnx as ob
from live.dream.backends.trace import trace_step
from live.dream.images import natural_picture, to_tensor
from live.dream.step import make_step
from tools import export as export_tool


def test_decomposition_is_exact_and_leaves_no_backward_ops(backbone):
    step = make_step(backbone, "blocks.5")
    try:
        gm = trace_step(step, SIZE, backbone.device)
        targets = {str(n.target) for n in gm.graph.nodes if n.op == "call_function"}
        assert not any("backward" in t for t in targets), targets
        x = to_tensor(natural_picture(*SIZE), backbone.device)
        with torch.no_grad():
            diff = (gm(x, torch.tensor(0.05)) - step(x, 0.05)).abs().max().item()
        assert diff < 1e-5  # same arithmetic as autograd, up to float rounding
    finally:
        step.close()


def test_export_matches_pytorch_on_photo_and_noise(exported):
    result = exported
    assert result.path.is_file()
    assert set(result.report) == {"photo", "noise"}
    for name, diff in result.report.items():
        assert diff.ok(), (name, str(diff))
        assert diff.mean < 1e-5  # in practice ~1e-6: far inside the tolerance


def test_onnx_step_follows_torch_on_another_picture_and_strength(backbone, exported):
    ort_step = ob.OrtStep(exported.path, backbone.device)
    step = make_step(backbone, LAYER, grad_norm=NORM)
    x = to_tensor(natural_picture(*SIZE, seed=3), backbone.device)  # channels_last, as the engine hands it over
    try:
        with torch.no_grad():
            for s in (0.012, 0.03):  # the strength is a graph input: no re-export
                ours, ref = ort_step(x, s), step(x, s)
                assert ours.shape == ref.shape and ours.device == x.device
                d = (ours - ref).abs()
                assert d.max().item() <= 2 * s and d.mean().item() <= 0.002 * s
                moved = (ours - x).abs().mean().item()
                assert 0.3 * s < moved < 1.5 * s  # it really stepped, by about the strength
        assert float(ort_step(x, 0.0).sub(x).abs().max()) < 1e-6
    finally:
        step.close()


def test_cache_key_covers_what_shapes_the_graph(backbone, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    base = ob.cache_path(backbone, LAYER, "amplify", SIZE, "mean")
    assert base.parent == tmp_path / "dreamcam" / "onnx" and base.suffix == ".onnx"
    others = [ob.cache_path(backbone, "blocks.9", "amplify", SIZE, "mean"),
              ob.cache_path(backbone, LAYER, "channel:3", SIZE, "mean"),
              ob.cache_path(backbone, LAYER, "amplify", (SIZE[0], SIZE[1] + 8), "mean"),
              ob.cache_path(backbone, LAYER, "amplify", SIZE, "laplacian")]
    assert len({base, *others}) == 5
    assert ob.cache_path(backbone, LAYER, "amplify", SIZE, "mean") == base


def test_cache_key_follows_the_weights_not_the_object(backbone):
    """Keyed by content: a network with other weights never hits another's export, even
    when Python reuses the first one's id() after it is collected."""
    import copy
    twin = copy.copy(backbone)
    twin._fingerprint = None
    assert ob.cache_path(twin, LAYER, "amplify", SIZE, "mean") == ob.cache_path(backbone, LAYER, "amplify", SIZE, "mean")
    changed = copy.deepcopy(backbone)
    changed._fingerprint = None
    with torch.no_grad():
        next(changed.net.parameters()).add_(1e-3)
    assert ob.cache_path(changed, LAYER, "amplify", SIZE, "mean") != ob.cache_path(backbone, LAYER, "amplify", SIZE, "mean")


def test_cli_validates_prints_differences_and_writes(onnx_cache, tmp_path, capsys):
    out = tmp_path / "step.onnx"
    assert export_tool.main(["--layer", LAYER, "--size", "160x120", "--grad-norm", NORM, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "photo" in text and "noise" in text and "max diff" in text
    assert out.is_file() and out.stat().st_size > 1_000_000


def test_cli_refuses_to_write_beyond_tolerance(onnx_cache, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(validate, "TOLERANCE_MEAN", 0.0)  # nothing real is that exact
    out = tmp_path / "refused.onnx"
    assert export_tool.main(["--layer", LAYER, "--size", "160x120", "--grad-norm", NORM, "--out", str(out)]) == 1
    assert "refused" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("args, words", [
    (["--model", "nope"], "unknown"),
    (["--layer", "blocks.99"], "does not exist"),
    (["--size", "320by240"], "WIDTHxHEIGHT"),
    (["--size", "8x8"], "out of range"),
    (["--objective", "foo:bar"], "not understood"),
])
def test_cli_bad_input_is_one_line_and_exit_2(args, words, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        run(lambda: export_tool.main(args + ["--out", str(tmp_path / "x.onnx")]))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "x.onnx").exists()


def test_cli_refuses_a_directory_as_out_before_any_work(tmp_path, capsys):
    (tmp_path / "adir.onnx").mkdir()
    with pytest.raises(SystemExit) as exc:
        run(lambda: export_tool.main(["--out", str(tmp_path / "adir.onnx")]))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: --out '{tmp_path / 'adir.onnx'}' is a directory; give a file name"


def test_new_export_prunes_stale_versions_of_the_same_step(tmp_path):
    keep = tmp_path / "efficientnet_lite0_blocks.10_amplify_160x120_mean-aaaaaaaaaaaa.onnx"
    stale = tmp_path / "efficientnet_lite0_blocks.10_amplify_160x120_mean-bbbbbbbbbbbb.onnx"
    other = tmp_path / "efficientnet_lite0_blocks.10_amplify_320x240_mean-cccccccccccc.onnx"
    stamps = [p.with_name(f"{p.stem}.openvino-2026.4.1-CPU.ok") for p in (keep, stale)]  # openvino's checks
    for p in (keep, stale, other, *stamps):
        p.write_bytes(b"x")
    cache.prune_stale(keep)
    assert keep.exists() and other.exists() and not stale.exists()
    assert stamps[0].exists() and not stamps[1].exists()


def test_a_backbone_on_another_device_is_exported_and_validated_on_the_cpu(backbone, tmp_path):
    """The backbone dreams on a device that holds no numbers at all ('meta', standing in
    for CUDA): were any of the trace, the export or the validation run there, they could
    not give a file that passes. The CPU copy is the registry's network, checked by content."""
    import copy
    from live.dream.backends import openvino as ovb
    from live.dream.step import make_step
    meta = models.Backbone(backbone.name, copy.deepcopy(backbone.net).to("meta"), backbone.layers,
                           backbone.default_layer, backbone.classes, backbone.input_size, backbone.mean,
                           backbone.std, torch.device("meta"))
    meta._fingerprint = backbone.fingerprint()  # what a CUDA backbone's weights hash to ('meta' has none)
    step = make_step(meta, "blocks.3", grad_norm="mean")
    try:
        exported = ob.export_step(meta, step, (64, 48), tmp_path / "step.onnx")
        stamp = ovb.validate(exported.path, step, (64, 48), meta.device)
    finally:
        step.close()
    assert exported.path.is_file() and all(d.ok() for d in exported.report.values())
    assert "photo" in stamp
    assert meta.on_cpu().device.type == "cpu" and meta.on_cpu() is meta.on_cpu()   # loaded once
    assert sum(len(m._forward_hooks) for m in meta.on_cpu().net.modules()) == 0     # its hooks came off
    assert backbone.on_cpu() is backbone


def test_the_fp16_graph_exports_with_half_convolutions_and_validates_by_its_update(backbone, tmp_path):
    """The optional fp16 graph (for ONNX Runtime on CUDA) is made and checked on the CPU:
    fp16 autocast traced into it, its update close to the fp32 step's; a cache name of its
    own, so neither file prunes the other."""
    import onnx
    step = make_step(backbone, "blocks.3", grad_norm="mean")
    try:
        exported = ob.export_step(backbone, step, (64, 48), tmp_path / "half.onnx", half=True)
    finally:
        step.close()
    assert all(c.ok() and c.cosine > validate.HALF_COSINE for c in exported.report.values())
    graph = onnx.load(str(exported.path)).graph
    halves = [t for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT16]
    assert len(halves) > 10                                                  # the convolution weights
    assert [i.type.tensor_type.elem_type for i in graph.input] == [onnx.TensorProto.FLOAT] * 2  # fp32 in and out
    full = ob.cache_path(backbone, "blocks.3", "amplify", (64, 48), "mean")
    half = ob.cache_path(backbone, "blocks.3", "amplify", (64, 48), "mean", half=True)
    assert full != half and full.name.split("-")[:-1] != half.name.split("-")[:-1]


def test_the_crops_after_strided_input_gradients_are_folded_into_them(exported):
    """The model's asymmetric "same" padding comes back in the gradient as a crop after each
    stride-2 transposed convolution; the export folds it into the convolution's own
    (asymmetric) pads, and the file still matches PyTorch (the fixture validated it)."""
    import onnx
    from onnx import helper
    graph = onnx.load(str(exported.path)).graph
    made_by = {out: node.op_type for node in graph.node for out in node.output}
    assert not [n.name for n in graph.node if n.op_type == "Pad" and made_by.get(n.input[0]) == "ConvTranspose"]
    pads = [helper.get_attribute_value(a) for n in graph.node if n.op_type == "ConvTranspose"
            for a in n.attribute if a.name == "pads"]
    assert sum(p[:2] != p[2:] for p in map(list, pads)) >= 3      # the network's strided convolutions
    used = {name for node in graph.node for name in node.input}
    assert all(t.name in used for t in graph.initializer)         # no crop's pads left behind
