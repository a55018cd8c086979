"""Temporal coherence of the live dream, measured: does a still scene hold still, and does
the dream flow with a moving one?

    python -m qa.coherence [--image PHOTO] [--frames 48] [--out docs/coherence]
    python -m qa.coherence --clip FILE [--dreamed A.mp4 --dreamed B.mp4] (qa/clip_report.py)

Still scene (a textured picture plus Gaussian sensor noise, new noise every frame):
  strength = mean |out - in| after warm-up (how visible the dream is),
  flicker  = mean |out(t) - out(t-1)| after warm-up (shimmer; the input's own is shown).
Panning scene (a moving crop over a large picture, with sensor noise):
  warp error = mean |warp(out(t-1)) - out(t)| along the pan's true flow (cubic), beside the
  same measure on the input itself (what perfect tracking of the scene would give).
Modes, all in one run on the same frames: `fresh` (no carrying, each frame dreamed from
the camera picture alone), `carry` (residual carried, not warped), `warp` (flow-warped with
confidence fading), `warp+motion` (plus the motion response). Prints a table, writes
JSON and contact sheets of consecutive frames (PNG)."""
from __future__ import annotations

import argparse
import json
import logging
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

import models
from live import config
from live.cli import Parser, UsageError, finite, finite_pair, parse_size, positive, run
from live.dream import DreamEngine
from live.dream.images import natural_picture
from live.dream.temporal.coherent import TemporalDream
from live.dream.temporal.flow import warp_image
from .plotting import pyplot
from . import clip_report

log = logging.getLogger("coherence")

MODES = ("fresh", "carry", "warp", "warp+motion")


# -- scenes ----------------------------------------------------------------------------------



def _noisy(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    if sigma <= 0:
        return img
    return np.clip(img.astype(np.float32) + rng.normal(0.0, sigma, img.shape), 0, 255).astype(np.uint8)


def _to_working(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def still_scene(source: np.ndarray, n: int, capture: tuple[int, int], size: tuple[int, int],
                noise: float, seed: int = 0) -> list[np.ndarray]:
    """n frames of one still picture, fresh sensor noise (at capture resolution) each frame."""
    rng = np.random.default_rng(seed)
    cw, ch = capture
    img = cv2.resize(source, (cw, ch), interpolation=cv2.INTER_AREA if source.shape[1] > cw else cv2.INTER_CUBIC)
    return [_to_working(_noisy(img, noise, rng), size) for _ in range(n)]


def pan_scene(source: np.ndarray, n: int, capture: tuple[int, int], size: tuple[int, int],
              noise: float, speed: tuple[float, float], seed: int = 0) -> list[np.ndarray]:
    """n frames of a window panning over `source` at `speed` working-size pixels per frame
    (subpixel steps, like a real camera), with sensor noise."""
    rng = np.random.default_rng(seed)
    cw, ch = capture
    k = cw / size[0]
    travel = (abs(speed[0]) * n * k, abs(speed[1]) * n * k)
    need_w, need_h = cw + travel[0] + 8, ch + travel[1] + 8
    scale = max(need_w / source.shape[1], need_h / source.shape[0], 1.0)
    big = cv2.resize(source, (int(np.ceil(source.shape[1] * scale)), int(np.ceil(source.shape[0] * scale))),
                     interpolation=cv2.INTER_CUBIC) if scale > 1.0 else source
    x0 = 4.0 if speed[0] >= 0 else big.shape[1] - cw - 4.0
    y0 = 4.0 if speed[1] >= 0 else big.shape[0] - ch - 4.0
    frames = []
    for t in range(n):
        ox, oy = x0 + speed[0] * k * t, y0 + speed[1] * k * t
        m = np.float32([[1, 0, -ox], [0, 1, -oy]])
        crop = cv2.warpAffine(big, m, (cw, ch), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        frames.append(_to_working(_noisy(crop, noise, rng), size))
    return frames


# -- measures --------------------------------------------------------------------------------

def flicker(frames: list[np.ndarray], warm: int) -> float:
    """Mean |f(t) - f(t-1)| over t > warm, in grey levels (0..255)."""
    d = [np.abs(frames[t].astype(np.float32) - frames[t - 1]).mean() for t in range(max(warm, 1), len(frames))]
    return float(np.mean(d))


def strength(outs: list[np.ndarray], ins: list[np.ndarray], warm: int) -> float:
    """Mean |out - in| over t >= warm, in grey levels."""
    return float(np.mean([np.abs(o.astype(np.float32) - i).mean() for o, i in list(zip(outs, ins))[warm:]]))


def pan_flows(n: int, size: tuple[int, int], speed: tuple[float, float],
              margin: int = 4) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """The pan's true backward flow (its known translation, the same every frame) and the
    pixels whose source lies inside the previous frame. Measured flow (DIS) is wrong by a
    fraction of a pixel, and that error times a deep dream's contrast counted as the
    dream's own: a dream baked into the panned picture, moving exactly with it, scored
    1.27x the input's (1.88x with a bilinear warp) instead of 1.16x."""
    w, h = size
    flow = np.empty((h, w, 2), np.float32)
    flow[...] = speed
    mask = np.zeros((h, w), bool)
    mask[margin + max(0, -int(np.floor(speed[1]))):h - margin - max(0, int(np.ceil(speed[1]))),
         margin + max(0, -int(np.floor(speed[0]))):w - margin - max(0, int(np.ceil(speed[0])))] = True
    return [None] + [(flow, mask)] * (n - 1)


def warp_error_map(prev: np.ndarray, cur: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Cubic: a bilinear resampling of the previous frame blurs it, and the blur of a deep
    dream's strokes counted as error (a perfectly carried dream: 1.81x the input's)."""
    return np.abs(warp_image(prev, flow, interp=cv2.INTER_CUBIC).astype(np.float32) - cur).mean(-1)


def warp_error(frames: list[np.ndarray], flows: list, warm: int) -> float:
    """Mean |warp(f(t-1)) - f(t)| inside the tracked region, t >= warm, grey levels."""
    errs = []
    for t in range(max(warm, 1), len(frames)):
        flow, mask = flows[t]
        errs.append(warp_error_map(frames[t - 1], frames[t], flow)[mask].mean())
    return float(np.mean(errs))


# -- running ---------------------------------------------------------------------------------

@dataclass
class Row:
    mode: str
    still_strength: float
    still_flicker: float
    pan_strength: float
    pan_warp_error: float
    pan_ratio: float       # warp error of the output / of the input


def run_mode(engine: DreamEngine, mode: str, frames: list[np.ndarray], cfg: config.Config,
             fps: float, seed: int = 0) -> list[np.ndarray]:
    """Dream a sequence in one mode from a clean start; returns the output frames. Every
    mode goes through TemporalDream (same input denoising); `fresh` forgets the dream
    before each frame."""
    engine.reset()
    engine.warp = None
    engine._rng = random.Random(seed)  # the same jitter sequence in every mode
    motion = replace(cfg.motion, flow=mode.startswith("warp"), enabled=mode == "warp+motion")
    temporal = TemporalDream(engine, motion, replace(cfg.attract, enabled=False))
    outs = []
    for f in frames:
        if mode == "fresh":
            engine.reset()
        outs.append(temporal(f, dt=1.0 / fps)[0])
    engine.warp = None
    return outs


def _label(img: np.ndarray, text: str) -> np.ndarray:
    img = img.copy()
    cv2.putText(img, text, (5, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, (5, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def _heat(err: np.ndarray, gain: float) -> np.ndarray:
    """An error map (grey levels) as a colour picture: black = 0, bright = gain-amplified."""
    u8 = np.clip(err * gain, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(u8, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)


def contact_sheet(rows: dict[str, list[np.ndarray]], start: int, cols: int, extra: dict[str, np.ndarray],
                  extra_name: str) -> np.ndarray:
    """One row per mode: `cols` consecutive frames from `start`, then one diagnostic map."""
    lines = []
    for name, frames in rows.items():
        tiles = [_label(frames[start + i], f"{name}  t={start + i}") for i in range(cols)]
        tiles.append(_label(extra[name], f"{name}: {extra_name}"))
        lines.append(np.hstack([np.pad(t, ((2, 2), (2, 2), (0, 0)), constant_values=255) for t in tiles]))
    return np.vstack(lines)


def attract_demo(engine: DreamEngine, cfg: config.Config, src: np.ndarray, args: argparse.Namespace,
                 out: Path, tag: str) -> None:
    """Idle attract mode end to end: a still room, nobody moves -> drift into the endless
    zoom -> someone walks in (the scene pans) -> the room comes back. Writes a contact
    sheet and a trace of the attract weight and the frame-to-frame change (no jumps)."""
    fps = args.fps
    attract = replace(cfg.attract, enabled=True, idle_seconds=2.0, fade_in=3.0, fade_out=1.0)
    n_still, n_move = 90, 30
    frames = still_scene(src, n_still, args.capture, args.size, args.noise, args.seed)
    frames += pan_scene(src, n_move, args.capture, args.size, args.noise, (4.0, 1.0), args.seed + 1)
    engine.reset()
    engine._rng = random.Random(args.seed)
    temporal = TemporalDream(engine, cfg.motion, attract)
    outs, weights = [], []
    for f in tqdm(frames, desc="attract", unit="frame"):
        o, st = temporal(f, dt=1.0 / fps)
        outs.append(o)
        weights.append(st.attract)
    engine.warp = None
    change = [0.0] + [float(np.abs(a.astype(np.float32) - b).mean()) for a, b in zip(outs[1:], outs)]
    back = next(i for i in range(n_still, len(frames)) if weights[i] == 0.0) if 0.0 in weights[n_still:] else None
    print(f"\nattract: idle after {attract.idle_seconds:.0f} s, full zoom at frame "
          f"{next((i for i, w in enumerate(weights) if w >= 1.0), None)}, motion at frame {n_still}, room back "
          f"(weight 0) at frame {back}; largest frame-to-frame change {max(change):.2f}/255 "
          f"(the still room: {np.mean(change[10:20]):.2f}, a pan step of the input: "
          f"{np.mean([np.abs(frames[i].astype(np.float32) - frames[i - 1]).mean() for i in range(n_still + 1, len(frames))]):.2f})")
    picks = list(range(10, len(frames), 10))
    rows = [np.hstack([np.pad(_label(outs[i], f"t={i} attract {weights[i]:.2f}"), ((2, 2), (2, 2), (0, 0)),
                              constant_values=255) for i in picks[k:k + 6]]) for k in (0, 6)]
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    cv2.imwrite(str(out / f"attract{tag}.jpg"), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))
    plt = pyplot(f"attract_trace{tag}.png")
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(8, 3))
    t = np.arange(len(frames)) / fps
    ax.plot(t, change, label="mean |out(t) - out(t-1)|, /255")
    ax2 = ax.twinx()
    ax2.plot(t, weights, color="C1", label="attract weight")
    ax2.set_ylim(-0.05, 1.05)
    ax.axvline(n_still / fps, color="grey", ls="--")
    ax.set_xlabel("seconds (someone moves at the dashed line)")
    ax.set_ylabel("frame change /255")
    ax2.set_ylabel("attract weight")
    lines = ax.get_lines()[:1] + ax2.get_lines()
    ax.legend(lines, [ln.get_label() for ln in lines], loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / f"attract_trace{tag}.png", dpi=100)
    plt.close(fig)
    print(f"wrote {out}/attract{tag}.jpg, attract_trace{tag}.png")


def build_parser() -> Parser:
    ap = Parser(prog="python -m qa.coherence", description=__doc__.split("\n\n")[0])
    size = lambda text: parse_size(text)  # noqa: E731 - argparse shows the type's name
    ap.add_argument("--image", help="picture to build both scenes from (default: a procedural texture)")
    ap.add_argument("--size", type=size, default=None, help="working size WxH (default: [dream] size, the CPU's)")
    ap.add_argument("--capture", type=size, default=(640, 480), help="camera size the noise is added at")
    ap.add_argument("--noise", type=finite, default=3.0, help="sensor noise sigma, grey levels at capture size")
    ap.add_argument("--frames", type=int, default=None, help="frames per scene and mode (48); --clip: the first N (all)")
    ap.add_argument("--warm", type=int, default=24, help="frames of warm-up before measuring")
    ap.add_argument("--speed", type=finite_pair, default=(2.4, 0.7), help="pan speed dx,dy in working pixels per frame")
    ap.add_argument("--fps", type=positive, default=10.0, help="dream frames per second (for the motion response)")
    ap.add_argument("--config", default=None, help="config.toml to take the dream defaults from")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override a config setting, e.g. --set dream.momentum=0.5 (repeatable)")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="docs/coherence", help="folder for the table JSON and contact sheets")
    ap.add_argument("--tag", default="", help="suffix for output file names")
    ap.add_argument("--attract", action="store_true", help="also run the idle attract-mode demo")
    ap.add_argument("--attract-only", action="store_true", help="only the attract-mode demo")
    g = ap.add_argument_group("real footage (qa/clip_report.py)")
    g.add_argument("--clip", metavar="FILE", help="measure the dream on this video: strength and flicker on its "
                   "still part, strength on moving pixels, warp error (dreams it now unless --dreamed)")
    g.add_argument("--dreamed", action="append", default=[], metavar="VIDEO",
                   help="a video made from --clip (tools.dream CLIP OUT) to measure instead (repeatable)")
    g.add_argument("--labels", help="names for the --dreamed videos, comma-separated (e.g. today,new)")
    g.add_argument("--sheet-frames", metavar="T,T,...", help="frames for a contact sheet input | each video | masks")
    return ap


def source_picture(args: argparse.Namespace) -> np.ndarray:
    if not args.image:
        return natural_picture(960, 720, args.seed)
    src = cv2.imread(args.image, cv2.IMREAD_COLOR)
    if src is None:
        raise UsageError(f"cannot read --image {args.image}")
    return cv2.cvtColor(src, cv2.COLOR_BGR2RGB)


def measure(engine: DreamEngine, cfg: config.Config, src: np.ndarray, modes: list[str],
            args: argparse.Namespace) -> tuple[list[Row], dict, dict]:
    """Every mode on the same still and panning frames: the table and the outputs."""
    speed = args.speed
    still = still_scene(src, args.frames, args.capture, args.size, args.noise, args.seed)
    pan = pan_scene(src, args.frames, args.capture, args.size, args.noise, speed, args.seed)
    flows = pan_flows(len(pan), args.size, speed)
    in_werr = warp_error(pan, flows, args.warm)
    outs_still, outs_pan = {"input": still}, {"input": pan}
    rows = [Row("input", 0.0, flicker(still, args.warm), 0.0, in_werr, 1.0)]
    for mode in tqdm(modes, desc="modes", unit="mode"):
        outs_still[mode] = run_mode(engine, mode, still, cfg, args.fps, args.seed)
        outs_pan[mode] = run_mode(engine, mode, pan, cfg, args.fps, args.seed)
        werr = warp_error(outs_pan[mode], flows, args.warm)
        rows.append(Row(mode, strength(outs_still[mode], still, args.warm), flicker(outs_still[mode], args.warm),
                        strength(outs_pan[mode], pan, args.warm), werr, werr / max(in_werr, 1e-6)))
    return rows, outs_still, {"outs": outs_pan, "flows": flows}


def print_table(rows: list[Row]) -> None:
    print("values in grey levels (x/255)")
    head = f"{'mode':<12} {'still strength':>14} {'still flicker':>13} {'pan strength':>12} {'pan warp err':>12} {'vs input':>9}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r.mode:<12} {r.still_strength:>14.2f} {r.still_flicker:>13.2f} {r.pan_strength:>12.2f} "
              f"{r.pan_warp_error:>12.2f} {r.pan_ratio:>8.2f}x")


def write_sheets(outs_still: dict, pan: dict, args: argparse.Namespace, out: Path, tag: str) -> None:
    start, cols = args.frames - 6, 5
    t = args.frames - 1
    still_extra = {k: _heat(np.abs(v[t].astype(np.float32) - v[t - 1]).mean(-1), 16) for k, v in outs_still.items()}
    sheet = contact_sheet(outs_still, start, cols, still_extra, "|f(t)-f(t-1)| x16")
    cv2.imwrite(str(out / f"still{tag}.jpg"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    flows = pan["flows"]
    pan_extra = {k: _heat(warp_error_map(v[t - 1], v[t], flows[t][0]) * flows[t][1], 8) for k, v in pan["outs"].items()}
    sheet = contact_sheet(pan["outs"], start, cols, pan_extra, "warp error x8")
    cv2.imwrite(str(out / f"pan{tag}.jpg"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.clip:
        return clip_report.run(args)
    if args.dreamed or args.sheet_frames:
        raise UsageError("--dreamed and --sheet-frames go with --clip FILE")
    args.frames = 48 if args.frames is None else args.frames
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise UsageError(f"--modes {', '.join(bad)}: choose from {', '.join(MODES)}")
    if args.warm >= args.frames - 2:
        raise UsageError("--warm must be below --frames - 2")
    src = source_picture(args)
    torch.manual_seed(args.seed)
    cfg = config.load(args.config, args.set)
    dream = cfg.dream.on("cpu")
    args.size = args.size or dream.size
    backbone = models.load(cfg.dream.model, device="cpu")
    engine = DreamEngine(backbone, settings=dream, size=args.size, precision="fp32", seed=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = f"_{args.tag}" if args.tag else ""
    if not args.attract_only:
        t0 = time.perf_counter()
        rows, outs_still, pan = measure(engine, cfg, src, modes, args)
        e = engine
        print(f"\nengine: {e.layer}, strength {e.strength}, decay {e.decay}, jitter {e.jitter}, {e.grad_norm}, "
              f"momentum {e.momentum}, limit {e.limit}, denoise {cfg.motion.denoise}, {args.size[0]}x"
              f"{args.size[1]}, sensor noise {args.noise}/255 at {args.capture[0]}x{args.capture[1]}, "
              f"{args.frames} frames ({args.warm} warm-up), {time.perf_counter() - t0:.0f} s")
        print_table(rows)
        report = {"settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()},
                  "dream": asdict(cfg.dream), "motion": asdict(cfg.motion), "rows": [asdict(r) for r in rows]}
        (out / f"coherence{tag}.json").write_text(json.dumps(report, indent=2))
        write_sheets(outs_still, pan, args, out, tag)
        print(f"wrote {out}/coherence{tag}.json, still{tag}.jpg, pan{tag}.jpg")
    if args.attract or args.attract_only:
        attract_demo(engine, cfg, src, args, out, tag)
    return 0


if __name__ == "__main__":
    run(main)
