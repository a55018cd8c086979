"""Visitor souvenirs on disk: a one-time name with 128 random bits, a JPEG at the screen's
resolution, gone when it expires (also at start), the oldest ones going first past the
disk cap, and nothing found under a name that was not given out."""
from __future__ import annotations

import os
import time

import cv2
import numpy as np
import pytest

from live.dream.images import natural_picture
from live.souvenir import NAME, Souvenirs, new_token


def test_a_souvenir_lives_until_it_expires(tmp_path):
    now = [time.time()]
    store = Souvenirs(tmp_path / "sv", minutes=15, max_mb=100, clock=lambda: now[0])
    token = new_token()
    assert NAME.fullmatch(token) and len(token) * 6 >= 128
    pic = natural_picture(640, 360, seed=2)
    path = store.save(token, pic)
    assert path.name == f"{token}.jpg" and os.listdir(tmp_path / "sv") == [path.name]   # no partial left
    back = cv2.cvtColor(cv2.imread(str(store.file(token))), cv2.COLOR_BGR2RGB)
    assert back.shape == pic.shape and np.abs(back.astype(int) - pic).mean() < 4
    for guess in (new_token(), token[:-1] + ("A" if token[-1] != "A" else "B"), "../" + token, "", token + ".jpg"):
        assert store.file(guess) is None
    now[0] += 14 * 60
    assert store.file(token) == path
    now[0] += 61
    assert store.file(token) is None and not path.exists()          # expired: deleted on the spot


def test_expired_ones_go_at_start_and_the_cap_holds(tmp_path):
    folder = tmp_path / "sv"
    old = Souvenirs(folder, minutes=15, max_mb=100)
    stale = [old.save(new_token(), natural_picture(320, 240, seed=i)) for i in range(3)]
    for p in stale:
        t = time.time() - 3600
        os.utime(p, (t, t))
    fresh = old.save(new_token(), natural_picture(320, 240, seed=9))
    Souvenirs(folder, minutes=15, max_mb=100)                         # a restart
    assert sorted(folder.iterdir()) == [fresh]
    cap = fresh.stat().st_size * 2.5
    small = Souvenirs(folder, minutes=15, max_mb=cap / 2 ** 20)
    made = [small.save(new_token(), natural_picture(320, 240, seed=10 + i)) for i in range(4)]
    left = sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime)
    assert sum(p.stat().st_size for p in left) <= cap and 1 < len(left) < 5
    assert left == made[-len(left):] and not fresh.exists()              # the oldest went first
    with pytest.raises(ValueError):
        small.save("../../etc/passwd", natural_picture(32, 32))


def test_the_v_key_asks_for_a_souvenir_where_they_are_on():
    import pygame

    from conftest import small_config
    from live import controls
    from live.commands import Commands
    from live.state import State
    press = pygame.event.Event(pygame.KEYDOWN, key=pygame.K_v, mod=0)
    on = Commands(State.from_config(small_config("remote.enabled=true", "souvenir.enabled=true")))
    assert controls.handle(press, on, kiosk=True) == "souvenir"
    assert len(on.state.take_souvenir_requests()) == 1
    off = Commands(State.from_config(small_config()))
    controls.handle(press, off)
    assert off.state.souvenir_requests == [] and "souvenirs are off" in off.state.message


def test_souvenirs_are_written_off_the_display_thread(tmp_path):
    """The window hands a souvenir to a thread of its own (a JPEG and two fsyncs must not
    stop the live picture) and learns from `poll` when its file is there, or why not."""
    import threading

    from live.souvenir import SouvenirWriter
    store = Souvenirs(tmp_path / "sv", minutes=15, max_mb=100)
    threads = []
    save = store.save
    store.save = lambda token, rgb: threads.append(threading.current_thread()) or save(token, rgb)
    writer = SouvenirWriter(store)
    good, pic = new_token(), natural_picture(320, 180, seed=3)
    writer.submit(good, pic)
    writer.submit("not-a-token", pic)
    writer.close()                                      # waits for both
    results = dict(writer.poll())
    assert results[good] == store.file(good) and results[good].is_file()
    assert isinstance(results["not-a-token"], ValueError)
    assert threads and all(t is not threading.main_thread() for t in threads)
    assert writer.poll() == []                          # each result is handed back once
