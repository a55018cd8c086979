"""The OSC server over real UDP on loopback, driven by python-osc messages: settings and
actions apply, state changes come back to the client, and a flood of garbage datagrams
and bad values is dropped and counted while the state stays as it was."""
from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from conftest import OscClient, objective_check, osc_datagram, small_config, wait_for
from live.__main__ import main
from live.commands import Commands
from live.config import ConfigError, OscConfig
from live.remote.osc import OscServer
from live.state import State


@pytest.fixture
def osc():
    """start(*config overrides) -> a started OSC server on a free loopback port, its
    commands and a client; all closed after the test."""
    made = []

    def start(*more: str, backbone=None):
        cfg = small_config("osc.enabled=true", "osc.port=0", *more)
        commands = Commands(State.from_config(cfg), objective_check(backbone) if backbone is not None else None)
        server = OscServer(cfg.osc, commands)
        server.start()
        client = OscClient(server.port)
        made.append((server, client))
        return server, commands, client
    yield start
    for server, client in made:
        client.close()
        server.stop()


def replied(client, address, check) -> bool:
    return wait_for(lambda: address in client.poll() and check(client.received[address]))


def test_settings_and_actions_apply_and_the_state_comes_back(osc):
    server, commands, client = osc()
    state = commands.state
    client.send("/dreamcam/strength", 0.02)
    client.send("/dreamcam/blend", 0.4)
    client.send("/dreamcam/layer", "blocks.7")
    assert wait_for(lambda: state.layer == "blocks.7")
    assert state.strength == pytest.approx(0.02) and state.blend == pytest.approx(0.4)   # OSC floats are 32-bit
    assert replied(client, "/dreamcam/layer", lambda v: v == ["blocks.7"])   # a new client gets everything
    assert client.received["/dreamcam/strength"] == [pytest.approx(0.02)]
    commands.run("deeper")                                   # a key press: the OSC client hears of it
    assert replied(client, "/dreamcam/layer", lambda v: v == ["blocks.8"])
    client.send("/dreamcam/preset", 3)
    assert wait_for(lambda: state.preset == 2) and replied(client, "/dreamcam/preset", lambda v: v == [3])
    client.send("/dreamcam/freeze", 1.0)                     # a toggle widget's float
    assert wait_for(lambda: state.frozen) and replied(client, "/dreamcam/freeze", lambda v: v == [1])
    client.send("/dreamcam/next_preset", 1.0)               # a push button: press ...
    client.send("/dreamcam/next_preset", 0.0)               # ... and release (ignored)
    client.send("/dreamcam/reset_dream")                     # no argument at all
    assert wait_for(lambda: state.resets == 1)
    assert state.preset == 3                                 # advanced once
    strength = state.strength
    client.send("/dreamcam/strength", 5.0)
    assert replied(client, "/dreamcam/error", lambda v: "out of range" in v[0])
    assert state.strength == strength
    assert server.refused == 1 and server.dropped == 0


def garbage(rng: np.random.Generator) -> list[bytes]:
    """Datagrams a broken or hostile sender could send."""
    good = osc_datagram("/dreamcam/strength", 0.3)
    bundle = b"#bundle\x00" + b"\x00" * 8
    crafted = [
        b"", b"\x00", b"/dreamcam/strength", good[:-2], good[:len(good) // 2], good + b"\x01",
        b"/dreamcam/strength\x00\x00,f\x00\x00",                            # a float tag without data
        b"/dreamcam/layer\x00,s\x00\x00blocks.7",                           # an unterminated string
        b"/dreamcam/strength\x00\x00,d\x00\x00" + struct.pack(">d", math.nan),
        b"/dreamcam/blend\x00\x00\x00\x00,b\x00\x00" + struct.pack(">i", 1 << 30),  # a blob far too long
        bundle + struct.pack(">i", 9999) + good,                            # element size beyond the data
        bundle + struct.pack(">i", -4) + good,                               # python-osc's own walker hangs here
        bundle + struct.pack(">i", len(good)) + good + b"\xff\xff",
        b"#bundle\x00",
    ]
    bad_values = [
        ("/dreamcam/strength", "abc"), ("/dreamcam/strength", math.nan), ("/dreamcam/strength", math.inf),
        ("/dreamcam/strength", -1.0), ("/dreamcam/strength", 0.1, 0.2), ("/dreamcam/strength",),
        ("/dreamcam/blend", 7.0), ("/dreamcam/layer", 3.0), ("/dreamcam/layer", "blocks.99"),
        ("/dreamcam/layer", "x" * 5000), ("/dreamcam/preset", 0), ("/dreamcam/preset", 99),
        ("/dreamcam/preset", 1.5), ("/dreamcam/freeze", 3), ("/dreamcam/freeze", "on"),
        ("/dreamcam/objective", "\x07bell"), ("/dreamcam/zoom", 9.0), ("/dreamcam/quit",),
        ("/dreamcam/quit", 1), ("/dreamcam/toggle_fullscreen", 1.0), ("/dreamcam/fullscreen", False),
        ("/dreamcam/snapshot", 1), ("/dreamcam/nonsense", 1), ("/other/strength", 0.2), ("/dreamcam/", 1),
        ("/dreamcam/strength", b"\x00\x01"),
    ]
    random = [rng.bytes(int(n)) for n in rng.integers(1, 1500, 60)]
    flipped = []
    for _ in range(60):                                         # real messages with bytes flipped
        b = bytearray(osc_datagram("/dreamcam/blend", 0.33))
        b[int(rng.integers(len(b)))] ^= int(rng.integers(1, 256))
        flipped.append(bytes(b))
    return crafted + [osc_datagram(*m) for m in bad_values] + random + flipped


def test_a_flood_of_garbage_and_bad_values_leaves_the_state_and_the_server_alone(osc, caplog):
    server, commands, client = osc("kiosk.enabled=true")
    state = commands.state
    before = {k: v for k, v in commands.public_state().items() if k not in ("message", "blend")}
    datagrams = garbage(np.random.default_rng(0)) * 10           # 1600 datagrams, in bursts of 16
    for i in range(0, len(datagrams), 16):
        start = server.received
        for d in datagrams[i:i + 16]:
            client.raw(d)
        wait_for(lambda: server.received >= start + 16, 5)     # a burst fits the socket's buffer
    after_flood = dict(before)

    def sentinel_applied() -> bool:     # loopback UDP may drop under a flood: repeat until one lands
        client.send("/dreamcam/mirror", int(not before["mirror"]))
        return state.mirror != before["mirror"]
    assert wait_for(sentinel_applied)
    now = {k: v for k, v in commands.public_state().items() if k not in ("message", "blend")}
    after_flood["mirror"] = not before["mirror"]
    # a flipped byte may still make a valid blend message (the one setting the flood may move)
    assert now == after_flood and 0.0 <= state.blend <= 1.0
    assert state.running and state.fullscreen               # kiosk: no remote quits or leaves fullscreen
    assert server.dropped > 100 and server.refused > 100 and server._thread.is_alive()
    assert not [r for r in caplog.records if "pythonosc" in r.pathname]   # counted, not logged per packet


def test_beyond_localhost_osc_needs_an_allow_list():
    with pytest.raises(ConfigError, match="osc.allow"):
        small_config("osc.enabled=true", "osc.host=\"0.0.0.0\"")
    with pytest.raises(ConfigError, match="'osc.allow': 'nope' is not an IP address"):
        small_config("osc.enabled=true", "osc.host=\"0.0.0.0\"", "osc.allow=\"nope\"")
    cfg = small_config("osc.enabled=true", "osc.host=\"0.0.0.0\"", "osc.allow=\"192.168.1.20\"")
    commands = Commands(State.from_config(cfg))
    server = OscServer(cfg.osc, commands)                   # the handler, not bound: nothing listens
    server.handle(osc_datagram("/dreamcam/strength", 0.03), ("192.168.1.99", 9000))
    assert server.dropped == 1 and commands.state.strength != pytest.approx(0.03)
    server.handle(osc_datagram("/dreamcam/strength", 0.03), ("192.168.1.20", 9000))
    assert commands.state.strength == pytest.approx(0.03)
    assert OscServer(OscConfig(), commands).open            # localhost: any local sender


def test_a_weak_token_beyond_localhost_is_refused_at_start(tmp_path, capsys):
    args = ["--headless", "--record", str(tmp_path / "a.mp4"), "--set", "remote.enabled=true",
            "--set", "remote.host=\"0.0.0.0\""]
    assert main(args + ["--set", "remote.token=\"short\""]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'remote.token' has 5 characters" in err and "at least 16" in err
    small_config("remote.enabled=true", "remote.token=\"short\"")   # on localhost a short token is allowed
    for weak in (" " * 16, "a" * 32, " " + "k" * 20 + "-real-secret"):   # guessable, or never matched
        assert main(args + ["--set", f"remote.token=\"{weak}\""]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "'remote.token' is blank, one repeated character" in err


def test_an_objective_weight_that_would_freeze_the_dream_gets_an_osc_error(osc, backbone):
    server, commands, client = osc(backbone=backbone)
    for objective in ("nan*amplify", "inf*amplify", "1e300*amplify"):
        client.send("/dreamcam/objective", objective)
        assert replied(client, "/dreamcam/error", lambda v: "finite number" in v[0])
        client.received.pop("/dreamcam/error", None)
    assert commands.state.objective == "amplify" and server.refused == 3


def osc_bundle(*messages: tuple) -> bytes:
    """A real OSC bundle (python-osc's builder) of (address, *args) messages, sent at once."""
    from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
    from pythonosc.osc_message_builder import OscMessageBuilder
    bundle = OscBundleBuilder(IMMEDIATELY)
    for address, *args in messages:
        b = OscMessageBuilder(address)
        for a in args:
            b.add_arg(a)
        bundle.add_content(b.build())
    return bundle.build().dgram


def test_a_bundle_is_applied_all_or_none(osc):
    server, commands, client = osc("kiosk.enabled=true")
    state = commands.state
    before = commands.values()
    for bad in (("/dreamcam/blend", 7.0), ("/dreamcam/quit",), ("/dreamcam/nonsense", 1.0), ("/dreamcam/layer",)):
        client.raw(osc_bundle(("/dreamcam/strength", 0.02), ("/dreamcam/next_preset",), bad))
        assert replied(client, "/dreamcam/error", lambda v: "bundle refused, nothing applied" in v[0]), bad
        client.received.pop("/dreamcam/error")
    assert commands.values() == before and server.refused == 4
    client.raw(osc_bundle(("/dreamcam/strength", 0.02), ("/dreamcam/blend", 0.4), ("/dreamcam/next_preset",)))
    assert wait_for(lambda: state.preset == 0)                 # from the [dream] settings to preset 1
    assert state.strength == pytest.approx(0.02) and state.blend == pytest.approx(0.4)
    assert server.applied == 1 and server.refused == 4
