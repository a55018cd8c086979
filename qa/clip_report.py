"""qa.coherence --clip FILE: the dream on real footage, measured on what people see.

    python -m qa.coherence --clip IN.mp4 [--dreamed A.mp4 --dreamed B.mp4 --labels A,B]
        [--sheet-frames 60,150,250] [--frames N] [--set section.key=value ...] [--out DIR]

Without --dreamed the clip is dreamed now, frame-exactly, as `tools.dream IN OUT` does with
config.toml (and --set); with --dreamed, videos made from IN are measured (same frames).
Grey levels (x/255, mean over RGB), after --warm frames, at the clip's full resolution:
  strength = mean |out - in|, overall, on the still part of the scene and on moving pixels;
  flicker  = mean |out(t) - out(t-1)|, overall and on the still part (the input's own beside);
  steady   = the still part's flicker with the camera's own shift taken out (out(t-1) moved by
    the input's median flow): a dream that sticks to a shaking scene shakes with it and adds
    to `flicker` by its own contrast; `steady` is what the dream changes by itself (shimmer);
  warp error = mean |warp(out(t-1)) - out(t)| (cubic) along the INPUT's flow where it stays inside
    the picture (a pan: the dream should move with the scene), beside the input's own;
  late     = strength on the still part in the last two thirds (the dream has had time to grow);
  fine     = the share of the change's energy (out - in, still part) above what a 320-wide
    picture holds (area down to 320 wide, cubic back up): 0 for a 320-wide dream upscaled;
  per second = strength on the still part, second by second (the growth curve).
Masks come from the input alone (DIS 'medium' at 320 wide, the camera's own shift taken out):
  moving = |flow| > 0.5 px/frame and the picture changed there (> 6 grey levels, blurred);
  still  = neither |flow| > 0.25 px/frame nor a change, anywhere within 4 px, from 2 s
           before to 0.5 s after. Prints a table; writes JSON, a PNG of the measures over
           time and (--sheet-frames) a contact sheet input | A | B | masks."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np
from tqdm import tqdm

from live import config
from live.dream.clip import ClipDreamer, ClipReader, clip_engine
from live.dream.temporal.flow import PRESETS, camera_shift, shift_image, warp_image
from .plotting import pyplot
from tools.outcome import load_model
from tools.sheet import contact_sheet

MEASURE_WIDTH = 320
FINE_WIDTH = 320                                   # "detail above what a picture this wide holds"
MOVING_PX, STILL_PX, CHANGE = 0.5, 0.25, 6.0     # px/frame at 320 wide; grey levels
STILL_WINDOW = (2.0, 0.5)                          # seconds before, after


def grey(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.cvtColor(cv2.resize(img, size, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)


def motion_masks(clip: str, size: tuple[int, int], fps: float, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """moving[t], still[t] (bool, measuring size) from the input's own flow and change."""
    dis = cv2.DISOpticalFlow_create(PRESETS["medium"])
    k = size[0] / MEASURE_WIDTH
    k3, k5 = np.ones((3, 3), np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    near = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * int(4 * k) + 1,) * 2)
    moving, active, prev = [], [], None
    with ClipReader(clip, "--clip") as reader:
        for t, frame in enumerate(tqdm(reader, desc="masks", unit="frame", total=limit or reader.info.frames)):
            if limit is not None and t >= limit:
                break
            g = grey(frame, size)
            if prev is None:
                mag = chg = np.zeros(g.shape, np.float32)
            else:
                f = dis.calc(g, prev, None)
                sh = camera_shift(f)
                shifted = shift_image(prev, sh)
                mag = cv2.magnitude(f[..., 0] - sh[0], f[..., 1] - sh[1])
                chg = cv2.GaussianBlur(cv2.absdiff(g, shifted).astype(np.float32), (0, 0), 1.5 * k)
            mv = ((mag > MOVING_PX * k) & (chg > CHANGE)).astype(np.uint8)
            moving.append(cv2.morphologyEx(cv2.morphologyEx(mv, cv2.MORPH_CLOSE, k5), cv2.MORPH_OPEN, k3) > 0)
            active.append(cv2.dilate(((mag > STILL_PX * k) & (chg > CHANGE)).astype(np.uint8), near) > 0)
            prev = g
    act = np.stack(active)
    past, fut = (int(round(s * fps)) for s in STILL_WINDOW)
    still = np.stack([~act[max(0, t - past):t + fut + 1].any(0) for t in range(len(act))])
    return np.stack(moving), still


class Acc:
    """Pooled masked means over all frames: sum(x * mask) / sum(mask)."""

    def __init__(self) -> None:
        self.s: dict[str, float] = {}
        self.n: dict[str, int] = {}
        self.series: dict[str, list[float]] = {}

    def add(self, key: str, x: np.ndarray, mask: np.ndarray | None = None) -> None:
        v = x if mask is None else x[mask]
        self.s[key] = self.s.get(key, 0.0) + float(v.sum())
        self.n[key] = self.n.get(key, 0) + v.size
        self.series.setdefault(key, []).append(float(v.mean()) if v.size else float("nan"))

    def get(self, key: str) -> float:
        return self.s.get(key, 0.0) / max(self.n.get(key, 0), 1)


def absdiff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return cv2.absdiff(a, b).astype(np.float32).mean(-1)


def up(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return cv2.resize(mask.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST) > 0


def above(d: np.ndarray, width: int = FINE_WIDTH) -> np.ndarray:
    """The part of a picture (h x w float) finer than a `width`-wide picture holds."""
    h, w = d.shape
    if w <= width:
        return np.zeros_like(d)
    small = cv2.resize(d, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    return d - cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def signed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a.astype(np.float32).mean(-1) - b.astype(np.float32).mean(-1)


def pan_flow(dis, cur: np.ndarray, prev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The input's backward flow at full size and where its source stays inside (2 px)."""
    flow = dis.calc(cv2.cvtColor(cur, cv2.COLOR_RGB2GRAY), cv2.cvtColor(prev, cv2.COLOR_RGB2GRAY), None)
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    sx, sy = xs + flow[..., 0], ys + flow[..., 1]
    return flow, (sx >= 2) & (sx <= w - 3) & (sy >= 2) & (sy <= h - 3)


def measure(ins: Iterable[np.ndarray], outs: dict[str, Iterable[np.ndarray]], moving: np.ndarray,
            still: np.ndarray, warm: int, keep: set[int]) -> tuple[dict[str, Acc], dict[int, dict]]:
    """Every measure for the input and each output, one frame at a time."""
    dis = cv2.DISOpticalFlow_create(PRESETS["medium"])
    acc = {name: Acc() for name in ["input", *outs]}
    prev: dict[str, np.ndarray] = {}
    kept: dict[int, dict] = {}
    streams = zip(ins, *outs.values())
    for t, (cur, *frames) in enumerate(tqdm(streams, desc="measure", unit="frame", total=len(moving))):
        if t >= len(moving):
            break
        screens = dict(zip(["input", *outs], [cur, *frames]))
        if t in keep:
            kept[t] = {k: v.copy() for k, v in screens.items()}
        if t >= warm:
            mv, st = up(moving[t], cur.shape), up(still[t], cur.shape)
            flow, inside = pan_flow(dis, cur, prev["input"])
            shift = camera_shift(flow)
            for name, scr in screens.items():
                a, d = acc[name], absdiff(scr, cur)
                a.add("strength", d)
                a.add("strength_still", d, st)
                if 3 * t >= len(moving):
                    a.add("strength_late", d, st)
                change = signed(scr, cur)
                a.add("energy_still", change * change, st)
                a.add("energy_fine", np.square(above(change)), st)
                a.add("strength_moving", d, mv)
                f = absdiff(scr, prev[name])
                a.add("flicker", f)
                a.add("flicker_still", f, st)
                a.add("flicker_steady", absdiff(shift_image(prev[name], shift), scr), st)
                werr = absdiff(warp_image(prev[name], flow, interp=cv2.INTER_CUBIC), scr)
                a.add("warp_error", werr, inside)
                a.add("warp_still", werr, inside & st)
                a.add("warp_moving", werr, inside & mv)
        prev = screens
    return acc, kept


def summary(acc: dict[str, Acc]) -> dict[str, dict[str, float]]:
    """The table: per output, its measures and their ratios to the input's own."""
    keys = ("strength", "strength_still", "strength_late", "strength_moving", "flicker", "flicker_still",
            "flicker_steady", "warp_error", "warp_still", "warp_moving")
    res = {name: {k: a.get(k) for k in keys} for name, a in acc.items()}
    i = res["input"]
    for name, r in res.items():
        r["fine"] = acc[name].get("energy_fine") / max(acc[name].get("energy_still"), 1e-9)
        r["moving_vs_still"] = r["strength_moving"] / max(r["strength_still"], 1e-6)
        r["flicker_still_x_input"] = r["flicker_still"] / max(i["flicker_still"], 1e-6)
        r["flicker_steady_x_input"] = r["flicker_steady"] / max(i["flicker_steady"], 1e-6)
        r["warp_x_input"] = r["warp_error"] / max(i["warp_error"], 1e-6)
    return res


COLUMNS = [("strength", "strength"), ("strength_still", "str still"), ("strength_late", "late"),
           ("fine", "fine"), ("strength_moving", "str moving"),
           ("moving_vs_still", "mov/still"), ("flicker", "flicker"), ("flicker_still", "flk still"),
           ("flicker_still_x_input", "x input"), ("flicker_steady", "steady"), ("flicker_steady_x_input", "x input"),
           ("warp_error", "warp err"), ("warp_x_input", "x input")]


def print_table(res: dict[str, dict[str, float]]) -> None:
    print("grey levels (x/255); 'x input': the same measure of the input itself")
    print(f"{'':<12}" + "".join(f"{c[1]:>11}" for c in COLUMNS))
    for name, r in res.items():
        print(f"{name[:12]:<12}" + "".join(f"{r[k]:>11.2f}" for k, _ in COLUMNS))


def per_second(acc: Acc, fps: float, warm: int, key: str = "strength_still") -> list[float]:
    """The mean of a per-frame series over each whole second of the clip (NaN-free)."""
    ys = np.asarray(acc.series.get(key, []), np.float64)
    n = max(1, int(round(fps)))
    first = -warm % n   # frames up to the first whole second
    chunks = [ys[i:i + n] for i in range(first, len(ys), n)]
    return [float(np.nanmean(c)) for c in chunks if len(c) == n and np.isfinite(c).any()]


def plot(acc: dict[str, Acc], fps: float, warm: int, path: Path, title: str) -> None:
    """Strength on the still part and on moving pixels, and the flicker on the still
    part, over time, for the input and each output."""
    plt = pyplot(str(path))
    if plt is None:
        return
    fig, axes = plt.subplots(3, 1, figsize=(9, 7.5), sharex=True)
    for ax, key, label in zip(axes, ("strength_still", "strength_moving", "flicker_still"),
                              ("strength, still part", "strength, moving pixels", "flicker, still part")):
        for i, (name, a) in enumerate(acc.items()):
            ys = a.series.get(key, [])
            ax.plot((warm + np.arange(len(ys))) / fps, ys, color=f"C{i}", lw=0.8, alpha=0.6, label=name)
            if key == "strength_still":   # the growth curve, second by second
                sec = per_second(a, fps, warm)
                start = -(-warm // max(1, int(round(fps))))
                ax.plot(start + 0.5 + np.arange(len(sec)), sec, "o-", color=f"C{i}", ms=3, lw=1.6)
        ax.set_ylabel(f"{label}\n/255")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper right")
    axes[0].set_title(title, fontsize=9)
    axes[-1].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def mask_picture(moving: np.ndarray, still: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    pic = np.zeros((*moving.shape, 3), np.uint8)
    pic[still] = (60, 120, 255)
    pic[moving] = (255, 80, 40)
    return cv2.resize(pic, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


def sheet(kept: dict[int, dict], moving: np.ndarray, still: np.ndarray) -> np.ndarray:
    """One row per chosen frame: input | each output | masks (still blue, moving red)."""
    cells = []
    for t, pics in sorted(kept.items()):
        cells += [(f"{name} t={t}", img) for name, img in pics.items()]
        cells.append((f"masks t={t}: still blue, moving red", mask_picture(moving[t], still[t], pics["input"].shape)))
    return contact_sheet(cells, columns=len(cells) // max(len(kept), 1))


def dreamed_now(clip: str, cfg: config.Config, seed: int) -> Iterator[np.ndarray]:
    """The clip dreamed frame-exactly now, as tools.dream does it."""
    with ClipReader(clip, "--clip") as reader:
        backbone = load_model(cfg.dream.model, cfg.dream.device)
        engine = clip_engine(backbone, cfg.dream, reader.info.size, seed)
        try:
            dreamer = ClipDreamer(engine, reader.info.fps, cfg.motion, cfg.attract, cfg.render.blend)
            for frame in reader:
                yield dreamer(frame)
        finally:
            engine.close()


def frames_of(path: str, what: str) -> Iterator[np.ndarray]:
    with ClipReader(path, what) as reader:
        yield from reader


def run(args: argparse.Namespace) -> int:
    """qa.coherence --clip: the table, JSON, the PNG and the sheet."""
    with ClipReader(args.clip, "--clip") as reader:
        info = reader.info
    size = (MEASURE_WIDTH, max(32, round(MEASURE_WIDTH * info.size[1] / info.size[0] / 2) * 2))
    limit = args.frames
    moving, still = motion_masks(args.clip, size, float(info.fps), limit)
    labels = [s.strip() for s in args.labels.split(",")] if args.labels else []
    if args.dreamed:
        names = [labels[i] if i < len(labels) else Path(p).stem for i, p in enumerate(args.dreamed)]
        outs = {n: frames_of(p, "--dreamed") for n, p in zip(names, args.dreamed)}
    else:
        cfg = config.load(args.config, args.set)
        outs = {(labels or ["dreamed"])[0]: dreamed_now(args.clip, cfg, args.seed)}
    keep = {int(v) for v in args.sheet_frames.split(",") if v.strip()} if args.sheet_frames else set()
    warm = max(1, min(args.warm, len(moving) // 3))
    acc, kept = measure(frames_of(args.clip, "--clip"), outs, moving, still, warm, keep)
    res = summary(acc)
    cover = {"still": float(still[warm:].mean()), "moving": float(moving[warm:].mean())}
    title = (f"{info.path.name}: {len(moving)} frames {info.size[0]}x{info.size[1]} at {float(info.fps):g} fps, "
             f"{warm} warm-up; still {cover['still']:.0%}, moving {cover['moving']:.0%} of pixels")
    print(title)
    print_table(res)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = f"_{args.tag}" if args.tag else ""
    curves = {name: per_second(a, float(info.fps), warm) for name, a in acc.items()}
    print("strength on the still part, per second: " + "; ".join(
        f"{name} " + " ".join(f"{v:.1f}" for v in c) for name, c in curves.items()))
    (out / f"clip{tag}.json").write_text(json.dumps({"clip": str(info.path), "coverage": cover, "warm": warm,
                                                     "results": res, "strength_still_per_second": curves},
                                                    indent=1))
    plot(acc, float(info.fps), warm, out / f"clip{tag}.png", title)
    written = [f"clip{tag}.json", f"clip{tag}.png"]
    if kept:
        cv2.imwrite(str(out / f"clip_sheet{tag}.png"), cv2.cvtColor(sheet(kept, moving, still), cv2.COLOR_RGB2BGR))
        written.append(f"clip_sheet{tag}.png")
    print(f"wrote {out}/" + ", ".join(written))
    return 0
