"""The one conftest: the real packaged network (loaded once), pictures and clips made
here (tests never read ../shared: a clone does not have it), small engine factories,
and the guards every test runs under: no forward hook may outlive its test, and the
user's cache folder is never touched (exports go to a temporary XDG_CACHE_HOME)."""
from __future__ import annotations

import gc
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from contextlib import contextmanager
from typing import Callable, Iterator

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
_CACHE = tempfile.mkdtemp(prefix="dreamcam-test-cache-")
os.environ["XDG_CACHE_HOME"] = _CACHE  # before anything reads it

import cv2
import numpy as np
import pytest
import torch

import models
from live.dream import DreamEngine
from live.dream.images import natural_picture

torch.set_num_threads(max(1, os.cpu_count() or 1))

ONNX_SIZE = (160, 120)     # the one ONNX export the suite makes (blocks.10, amplify, default grad_norm)
ONNX_LAYER = "blocks.10"
ONNX_NORM = "laplacian"    # what the default grad_norm "auto" is at 160 wide: engines with default settings hit the cache


def pytest_sessionfinish(session, exitstatus) -> None:
    shutil.rmtree(_CACHE, ignore_errors=True)


def pytest_collection_modifyitems(config, items) -> None:
    """Tests marked `cuda` run only where PyTorch can use an NVIDIA GPU (make gpucheck)."""
    if torch.cuda.is_available():
        return
    from models.nvidia import unusable_gpu
    why = unusable_gpu() or "no NVIDIA GPU with CUDA here"
    skip = pytest.mark.skip(reason=f"needs CUDA: {why} (make gpucheck runs these on an NVIDIA machine)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def backbone() -> models.Backbone:
    return models.load("efficientnet_lite0", device="cpu")


@pytest.fixture(scope="session")
def cuda_backbone() -> models.Backbone:
    """The same network on the GPU (tests marked `cuda` only)."""
    return models.load("efficientnet_lite0", device="cuda")


def _hooks(bb: models.Backbone) -> int:
    return sum(len(m._forward_hooks) for m in bb.net.modules())


@pytest.fixture(autouse=True)
def no_hook_leaks(request):
    """Engines share the session's network: a test must take its hooks off again."""
    yield
    if "backbone" in request.fixturenames:
        bb = request.getfixturevalue("backbone")
        gc.collect()  # engines close their hooks when collected
        assert _hooks(bb) == 0, f"{request.node.name} left {_hooks(bb)} forward hooks on the shared network"


@pytest.fixture
def photo() -> np.ndarray:
    return natural_picture(320, 240)


def write_clip(path: Path, frames: int = 12, size: tuple[int, int] = (64, 48), fps: float = 20.0,
               picture: Callable[[int], np.ndarray] | None = None) -> Path:
    """A small video written here. By default frame i has blue 20*i (frames can be told
    apart); `picture(i)` gives RGB frames instead."""
    fourcc = "mp4v" if Path(path).suffix == ".mp4" else "MJPG"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    assert writer.isOpened()
    for i in range(frames):
        if picture is None:
            img = np.zeros((size[1], size[0], 3), np.uint8)
            img[:] = (20 * i, 0, 200)  # BGR
        else:
            img = cv2.cvtColor(picture(i), cv2.COLOR_RGB2BGR)
        writer.write(img)
    writer.release()
    return Path(path)


def numbered_frame(i: int, size: tuple[int, int] = (96, 72), bits: int = 7) -> np.ndarray:
    """Frame i of a clip whose frames can be told apart after dreaming: a picture with a
    strip of `bits` bars across its top third, white where i has a 1 bit, black where 0
    (left to right, so a mirrored frame reads as another number)."""
    w, h = size
    img = natural_picture(w, h, seed=3)
    bar = w // bits
    for k in range(bits):
        img[:h // 3, k * bar:(k + 1) * bar] = 255 if (i >> k) & 1 else 0
    return img


def nearest_frames(outs: list[np.ndarray], ins: list[np.ndarray]) -> list[int]:
    """For each output frame, the input frame whose bar strip (numbered_frame) it is closest to."""
    def strip(img: np.ndarray) -> np.ndarray:
        return img[2:img.shape[0] // 3 - 2].astype(np.float32)
    return [int(np.argmin([np.abs(strip(o) - strip(i)).mean() for i in ins])) for o in outs]


def read_video(path: Path) -> list[np.ndarray]:
    """Every frame a video file gives (BGR), in order."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def write_clip_with_sound(path: Path, seconds: float = 3.0, fps: int = 20, size: tuple[int, int] = (64, 48),
                          tone_from: float = 1.0, rate: int = 48000,
                          sound: Callable[[np.ndarray], np.ndarray] | None = None,
                          picture: Callable[[int], np.ndarray] | None = None) -> Path:
    """A clip with H.264 video (frame i has grey level 4*i, or `picture(i)`) and AAC sound:
    silence, then a 440 Hz tone from `tone_from` seconds (or `sound(t)` for the sample
    times t), so where the sound sits in time can be measured."""
    import av
    with av.open(str(path), "w") as c:
        video = c.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        audio = c.add_stream("aac", rate=rate)
        audio.layout = "mono"
        for i in range(round(seconds * fps)):
            img = picture(i) if picture else np.full((size[1], size[0], 3), 4 * i % 256, np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            c.mux(video.encode(frame))
        c.mux(video.encode(None))
        t = np.arange(round(seconds * rate)) / rate
        tone = np.where(t >= tone_from, 0.5 * np.sin(2 * np.pi * 440 * t), 0.0)
        samples = (sound(t) if sound else tone).astype(np.float32)
        for k in range(0, len(samples), 1024):
            chunk = av.AudioFrame.from_ndarray(samples[None, k:k + 1024], format="flt", layout="mono")
            chunk.sample_rate, chunk.pts = rate, k
            c.mux(audio.encode(chunk))
        c.mux(audio.encode(None))
    return Path(path)


def beats(t: np.ndarray, times: list[float], drone: float = 0.1) -> np.ndarray:
    """A low drone with a drum-like hit (a burst of noise dying in ~10 ms) at each of `times`."""
    rng = np.random.default_rng(0)
    out = drone * np.sin(2 * np.pi * 110 * t)
    for b in times:
        after = t - b
        hit = (after >= 0) & (after < 0.05)
        out[hit] += 0.8 * rng.standard_normal(hit.sum()) * np.exp(-after[hit] / 0.01)
    return out


def file_size_limit(limit: int) -> Callable[[], None]:
    """A subprocess preexec_fn: no file may grow beyond `limit` bytes, and SIGXFSZ is
    ignored, so a write past it fails with EFBIG exactly as a full disk fails with
    ENOSPC (nothing to mount, nothing of the machine filled)."""
    def limit_files() -> None:
        import resource
        import signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return limit_files


def interrupt_when(args: list[str], pattern: str, cwd: Path, timeout: float = 120.0) -> tuple[int, str]:
    """Run a command, send it Ctrl+C (SIGINT) once its stderr matches `pattern` (a progress
    bar's count), and return its exit code and stderr."""
    import re
    import signal
    import subprocess
    # as a terminal's Ctrl+C finds it: started from a background job (`make test &`) the
    # child would inherit SIGINT ignored, and Python then never raises KeyboardInterrupt
    proc = subprocess.Popen(args, cwd=cwd, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(lambda: proc.stderr.read(1), "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not re.search(pattern, "".join(seen)):
        assert proc.poll() is None, "".join(seen)
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=60)
    reader.join(timeout=5)
    return code, "".join(seen)


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll until `predicate()` holds; the timeout is only a safety net, never a measure."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return False


@contextmanager
def jack_server(monkeypatch, up: Callable[[], bool], rate: int = 48000, period: int = 1024) -> Iterator[str]:
    """A JACK server of the test's own (dummy audio driver: it runs by the clock, no sound
    card; its own server name, set as the default), stopped afterwards. `up()` says when
    clients can use it. Skips with the reason where jackd is missing or does not start."""
    import subprocess
    jackd = shutil.which("jackd")
    if jackd is None:
        pytest.skip("no jackd here (apt-get install jackd2)")
    name = f"dreamcam-test-{os.getpid()}"
    monkeypatch.setenv("JACK_DEFAULT_SERVER", name)
    monkeypatch.setenv("JACK_NO_AUDIO_RESERVATION", "1")
    proc = subprocess.Popen([jackd, "-n", name, "--no-realtime", "-d", "dummy", "-r", str(rate), "-p", str(period)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not wait_for(lambda: proc.poll() is not None or up(), 30) or proc.poll() is not None:
            pytest.skip("jackd does not start here")
        yield name
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def wait_for_line(proc, text: str, timeout: float = 240.0) -> list[str]:
    """Read a subprocess's stderr (text mode) until a line containing `text`; the lines
    read so far. The timeout is only a safety net."""
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        for line in proc.stderr:
            lines.append(line)
            if text in line:
                found.set()
                return
    threading.Thread(target=read, daemon=True).start()
    assert found.wait(timeout), f"no '{text}' from the subprocess: {''.join(lines)[-2000:]}"
    return lines


def engine_factory(backbone: models.Backbone, built: list) -> Callable:
    """A dreamer's make_engine: eager torch, fp32, seeded, remembering what it built."""
    def factory(size, s):
        eng = DreamEngine(backbone, layer=s.layer, size=size, strength=s.strength, objective=s.objective,
                          precision="fp32", backend="torch", seed=0)
        built.append(eng)
        return eng
    return factory


def feed(slot, stop: threading.Event, img: np.ndarray, period: float = 0.01) -> None:
    """A stand-in camera: publish `img` into `slot` until `stop` is set."""
    from live.capture import Frame

    def run() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            slot.put(Frame(img, n, time.perf_counter(), "test"))
            time.sleep(period)
    threading.Thread(target=run, daemon=True).start()


@pytest.fixture(scope="session")
def exported(backbone):
    """One fresh ONNX export per session in the temporary cache (so the exporter itself
    is tested), and validated against PyTorch on the way."""
    from live.dream.backends import onnx as ob
    from live.dream.step import make_step
    step = make_step(backbone, ONNX_LAYER, grad_norm=ONNX_NORM)
    try:
        path = ob.cache_path(backbone, ONNX_LAYER, "amplify", ONNX_SIZE, ONNX_NORM)
        return ob.export_step(backbone, step, ONNX_SIZE, path)
    finally:
        step.close()


@pytest.fixture
def onnx_cache(exported) -> Path:
    """The cache folder holding the session's export (the engine finds it there)."""
    return exported.path.parent


@pytest.fixture(scope="session")
def openvino_ready(backbone, exported) -> str:
    """The session's export checked under OpenVINO (the stamp the openvino backend and
    auto look for); returns the differences from PyTorch."""
    from live.dream.backends import openvino as ovb
    from live.dream.step import make_step
    step = make_step(backbone, ONNX_LAYER, grad_norm=ONNX_NORM)
    try:
        return ovb.validate(exported.path, step, ONNX_SIZE, backbone.device)
    finally:
        step.close()


SMALL = ["dream.size=[96, 72]", "dream.precision=\"fp32\"", "dream.backend=\"torch\"", "render.width=160",
         "render.height=120", "dream.adaptive=false"]


def small_config(*more: str, path=None):
    """config.toml with a small, fixed working size, eager torch and fp32 (quick, repeatable), plus `more`."""
    from live import config
    return config.load(path, [*SMALL, *more])


def window_remote_config(token: str, *more: str):
    """A 640x480 window with the web remote on a free port and this token, plus `more`."""
    return small_config("render.fullscreen=false", "render.width=640", "render.height=480", "remote.enabled=true",
                        "remote.port=0", f"remote.token=\"{token}\"", *more)


def souvenir_config(token: str, folder: Path):
    """window_remote_config with souvenirs on, kept in `folder`."""
    return window_remote_config(token, "souvenir.enabled=true", f"souvenir.folder=\"{folder.as_posix()}\"")


def objective_check(backbone):
    """The app's check of an objective at a layer (Commands' check_objective), on the real network."""
    from live.dream import objectives

    return lambda objective, layer: objectives.for_backbone(objective, layer, backbone)


# -- remotes: real clients over loopback ------------------------------------------------------

def osc_datagram(address: str, *args) -> bytes:
    """A real OSC message (python-osc's builder), as TouchOSC would send it."""
    from pythonosc.osc_message_builder import OscMessageBuilder
    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


class OscClient:
    """A UDP socket on loopback that sends OSC to a server and reads what comes back."""

    def __init__(self, server_port: int):
        import socket
        self.server = ("127.0.0.1", server_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.received: dict[str, list] = {}

    def send(self, address: str, *args) -> None:
        self.sock.sendto(osc_datagram(address, *args), self.server)

    def raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.server)

    def poll(self) -> dict[str, list]:
        """Read what has arrived; returns every address's last arguments so far."""
        import socket
        from pythonosc.osc_message import OscMessage
        while True:
            try:
                data, _ = self.sock.recvfrom(65536)
            except socket.timeout:
                return self.received
            m = OscMessage(data)
            self.received[m.address] = list(m.params)

    def close(self) -> None:
        self.sock.close()


def http(method: str, url: str, body=None, token: str | None = None, raw: bytes | None = None,
         headers: dict[str, str] | None = None, raw_reply: bool = False):
    """(status, parsed JSON or text, or the bytes with raw_reply) of one real HTTP request."""
    import json as _json
    import urllib.error
    import urllib.request
    data = raw if raw is not None else (None if body is None else _json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, data = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, data = exc.code, exc.read()
    if raw_reply:
        return status, data
    text = data.decode()
    try:
        return status, _json.loads(text)
    except ValueError:
        return status, text


def decode_qr(bgr) -> str:
    """OpenCV's classic detector loses the code on some dream backgrounds (a phone's
    scanner looks at the code alone); the ArUco-based one finds it: try both."""
    for detector in (cv2.QRCodeDetector(), cv2.QRCodeDetectorAruco()):
        text, _, _ = detector.detectAndDecode(bgr)
        if text:
            return text
    return ""


def mjpeg_frame(url: str, token: str) -> np.ndarray:
    """The first JPEG of a multipart MJPEG stream (aiohttp's client), decoded (BGR). The
    server takes a few viewers at once and notices a closed one within half a second: a
    503 (all taken, e.g. by the previous call's stream) is waited out."""
    import asyncio
    import aiohttp

    async def first() -> bytes:
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession() as s:
            for _ in range(40):
                async with s.get(url, headers=headers) as r:
                    if r.status != 503:
                        return await read(r)
                await asyncio.sleep(0.25)
            raise AssertionError(f"{url}: every preview stream stayed taken")

    async def read(r) -> bytes:
        assert r.status == 200 and r.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        part = await asyncio.wait_for(aiohttp.MultipartReader.from_response(r).next(), 60)
        assert part.headers["Content-Type"] == "image/jpeg"
        return await part.read()
    return cv2.imdecode(np.frombuffer(asyncio.run(first()), np.uint8), cv2.IMREAD_COLOR)


def alongside(app, work: Callable[[], None], run_main: Callable[[], int]) -> int:
    """Run `work()` (a performer: OSC, HTTP, a browser) in a thread while `run_main()` runs
    the app's loop in the main thread (it sets signal handlers); the performer quits the app
    when it is done, and its failure is raised here. Returns the loop's exit code."""
    failures: list[BaseException] = []

    def performer() -> None:
        try:
            work()
        except BaseException as exc:
            failures.append(exc)
        finally:
            app.state.quit()
    t = threading.Thread(target=performer, daemon=True)
    t.start()
    code = run_main()
    t.join(timeout=60)
    if failures:
        raise failures[0]
    return code
