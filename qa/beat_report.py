"""python -m qa.beat_report CLIP: the dream against the music, measured.

    python -m qa.beat_report CLIP [--frames N] [--set section.key=value ...] [--out DIR]

Dreams CLIP frame-exactly as `tools.dream CLIP OUT.mp4 --set audio.enabled=true` does (its
soundtrack drives the settings through [[audio.map]]), into DIR/dreamed.mp4, and measures
frame by frame: the sound's features, the settings the rules sent, and the dream's strength
on screen (mean |out - in|, grey levels /255, at the clip's full size, before encoding).
For each beat: how many frames from it the dream's biggest rise (within 3 frames) falls.
Prints a table; writes DIR/beats.json and DIR/beats.png (features, settings, strength, beats)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from live import config
from live.audio.clip import follow_soundtrack
from live.cli import Parser, positive_int
from live.dream.clip import ClipDreamer, ClipReader, clip_engine, dream_clip, frames_to_write
from tools.outcome import load_model, outcome
from .plotting import pyplot

REACH = 3          # frames either side of a beat in which its rise is looked for


def build_parser() -> Parser:
    p = Parser(prog="python -m qa.beat_report", description=__doc__.split("\n\n")[0],
               formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("clip", metavar="CLIP", help="a video with sound")
    p.add_argument("--frames", type=positive_int, metavar="N", help="only the first N frames")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a setting")
    p.add_argument("--out", default="out/beats", help="folder for dreamed.mp4, beats.json, beats.png")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--verbose", action="store_true", help="log details (and tracebacks)")
    return p


def offsets(strength: np.ndarray, beats: Sequence[int]) -> list[int]:
    """Per beat: frames from it to the largest rise of the strength within REACH."""
    rise = np.diff(strength, prepend=strength[:1])
    out = []
    for b in beats:
        near = [i for i in range(b - REACH, b + REACH + 1) if 0 < i < len(rise)]
        if near:
            out.append(max(near, key=lambda i: rise[i]) - b)
    return out


def dream_measured(args: argparse.Namespace, out: Path) -> tuple[dict, np.ndarray, list[dict]]:
    cfg = config.load(None, ["audio.enabled=true", 'audio.source="clip"', *args.set])
    with ClipReader(args.clip, "CLIP") as reader:
        info = reader.info
        backbone = load_model(cfg.dream.model, cfg.dream.device)
        engine = clip_engine(backbone, cfg.dream, info.size, seed=0)
        try:
            music = follow_soundtrack(cfg, info.path, info.fps, engine)
            dreamer = ClipDreamer(engine, info.fps, cfg.motion, cfg.attract, cfg.render.blend)
            strength, sent = [], []

            def measured(frame: np.ndarray, blend: float | None) -> np.ndarray:
                rgb = dreamer(frame, blend)
                strength.append(float(np.abs(rgb.astype(np.float32) - frame).mean()))
                return rgb

            def before(i: int) -> None:
                sent.append(music(i))

            with tqdm(total=frames_to_write(info, args.frames), unit="frame", desc="dream", disable=args.quiet) as bar:
                dream_clip(reader, measured, out / "dreamed.mp4", args.frames, on_frame=lambda _: bar.update(),
                           blend=lambda: music.commands.state.view().blend, before=before)
        finally:
            engine.close()
    f = music.features
    n = len(strength)
    return ({"fps": f.fps, "tempo": f.tempo, "beats": [int(b) for b in f.beats if b < n],
             "features": {k: v[:n].round(4).tolist() for k, v in f.values.items()}},
            np.array(strength), sent)


def plot(report: dict, strength: np.ndarray, sent: list[dict], path: Path, title: str) -> None:
    plt = pyplot(str(path))
    if plt is None:
        return
    t = np.arange(len(strength)) / report["fps"]
    fig, axes = plt.subplots(3, 1, figsize=(11, 7), sharex=True)
    for name in ("level", "low", "onset"):
        axes[0].plot(t, report["features"][name], label=name, lw=1)
    for name in sorted({k for s in sent for k in s}):
        axes[1].plot(t, [s.get(name, np.nan) for s in sent], label=name, lw=1.2)
    axes[2].plot(t, strength, color="k", lw=1.2, label="dream strength on screen")
    for ax in axes:
        for b in report["beats"]:
            ax.axvline(b / report["fps"], color="tab:red", alpha=0.25, lw=0.8)
        ax.legend(loc="upper right", fontsize=8)
    axes[0].set_ylabel("sound (0..1)")
    axes[1].set_ylabel("settings sent")
    axes[2].set_ylabel("|out - in| /255")
    axes[2].set_xlabel("seconds (red: beats)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report(args: argparse.Namespace) -> str:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rep, strength, sent = dream_measured(args, out)
    offs = offsets(strength, rep["beats"])
    rep.update(strength=strength.round(3).tolist(), offsets=offs, sent=sent)
    (out / "beats.json").write_text(json.dumps(rep))
    plot(rep, strength, sent, out / "beats.png", f"{Path(args.clip).name}: the dream against its soundtrack")
    hist = {k: offs.count(k) for k in sorted(set(offs))}
    print(f"{len(strength)} frames at {rep['fps']:g} fps, {rep['tempo']:.0f} bpm, {len(rep['beats'])} beats")
    print("| frames from the beat to the dream's rise | " + " | ".join(f"{k:+d}" for k in hist) + " |")
    print("|---|" + "---|" * len(hist))
    print("| beats | " + " | ".join(str(v) for v in hist.values()) + " |")
    within = sum(abs(o) <= 1 for o in offs)
    return f" ({within}/{len(offs)} beats within one frame; {out}/beats.png)"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.output = args.out
    return outcome(lambda: report(args), args)


if __name__ == "__main__":
    raise SystemExit(main())
