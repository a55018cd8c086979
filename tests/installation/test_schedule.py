"""Opening hours: days and times as a gallery writes them, closing past midnight, staff
waking it or sending it to sleep until the next change, a malformed time refused in one
line; and the running installation asleep: camera released, no dream steps, and awake
again at opening (an injected clock, no waiting for real hours)."""
from __future__ import annotations

import datetime as dt

import pytest

from conftest import small_config, wait_for
from live.__main__ import main
from live.app import App
from live.config import opening_hours
from live.schedule import Hours, Schedule, ScheduleError, parse_days, parse_time

MONDAY = dt.date(2026, 11, 30)   # a Monday


def at(day: int, hhmm: str) -> dt.datetime:
    return dt.datetime.combine(MONDAY + dt.timedelta(days=day), parse_time(hhmm))


def test_days_and_times_as_written():
    assert parse_days("tue-sun") == {1, 2, 3, 4, 5, 6}
    assert parse_days("Mon, Wed,fri") == {0, 2, 4}
    assert parse_days("sat-mon") == {5, 6, 0}
    assert parse_days("daily") == set(range(7))
    assert parse_time("9:30") == dt.time(9, 30) and parse_time("18:00:30") == dt.time(18, 0, 30)
    for bad in ("funday", "mon-", "", "mon-xyz"):
        with pytest.raises(ScheduleError):
            parse_days(bad)
    for bad in ("25:00", "10", "10:60", "ten", "10:00pm"):
        with pytest.raises(ScheduleError):
            parse_time(bad)


def test_open_closed_past_midnight_and_all_day():
    h = Hours(parse_days("tue-sun"), parse_time("10:00"), parse_time("18:00"))
    assert not h.is_open(at(0, "12:00"))                     # Monday: closed
    assert h.is_open(at(1, "10:00")) and not h.is_open(at(1, "18:00")) and not h.is_open(at(1, "09:59"))
    assert h.next_change(at(0, "12:00")) == at(1, "10:00")
    night = Hours(parse_days("fri-sat"), parse_time("20:00"), parse_time("02:00"))
    assert night.is_open(at(4, "23:00")) and night.is_open(at(5, "01:59"))   # Friday night into Saturday
    assert not night.is_open(at(5, "02:00")) and not night.is_open(at(6, "03:00"))
    assert night.is_open(at(6, "01:00"))                     # Saturday night into Sunday
    always = Hours(parse_days("daily"), parse_time("00:00"), parse_time("00:00"))
    assert all(always.is_open(at(d, "03:17")) for d in range(7))


def test_staff_wake_and_sleep_hold_until_the_next_change():
    now = [at(0, "12:00")]
    s = Schedule(Hours(parse_days("tue-sun"), parse_time("10:00"), parse_time("18:00")), clock=lambda: now[0])
    assert s.asleep()
    s.wake()
    assert not s.asleep()
    now[0] = at(1, "09:00")
    assert not s.asleep()                 # still before Tuesday's opening
    now[0] = at(1, "11:00")
    assert not s.asleep()                 # open by the hours now
    s.sleep()
    assert s.asleep()
    now[0] = at(1, "18:30")
    assert s.asleep()                     # closed by the hours
    now[0] = at(2, "10:00")
    assert not s.asleep()                 # opens by itself on Wednesday
    now[0] = at(2, "09:00")
    assert s.asleep()                     # the clock set back (a time zone, a bad NTP step): followed
    assert not Schedule(None).asleep()    # no [schedule]: never asleep


def test_a_malformed_schedule_is_one_line_and_exit_2(tmp_path, capsys):
    args = ["--headless", "--record", str(tmp_path / "x.mp4"), "--log-file", "", "--set", "schedule.enabled=true"]
    for setting, words in (('schedule.open="25:00"', "'schedule.open': '25:00' is not a time of day"),
                           ('schedule.days="weekends"', "'schedule.days' = 'weekends'"),
                           ('schedule.picture="nope.png"', "'schedule.picture' = 'nope.png' is not a file")):
        assert main(args + ["--set", setting]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err, err
    assert opening_hours(small_config('schedule.days="mon-fri"').schedule) is None   # not enabled


def test_the_installation_sleeps_and_wakes(backbone):
    """Asleep: the source is released (the capture says so) and no dream step is done;
    a remote's wake brings it back now; opening time brings it back by itself."""
    cfg = small_config("schedule.enabled=true", 'schedule.days="tue-sun"')
    app = App(cfg, "clouds", backbone=backbone)
    now = [at(1, "12:00")]
    app.schedule = Schedule(opening_hours(cfg.schedule), clock=lambda: now[0])
    app.start()
    try:
        assert not app.tick_schedule()
        assert wait_for(lambda: app.dreamer.steps > 2, 120)
        now[0] = at(1, "19:00")                                       # closing time
        assert app.tick_schedule() and app.state.asleep
        assert wait_for(lambda: app.capture.status.startswith("asleep"), 30)
        steps = app.dreamer.steps
        seq = app.capture.slot.latest()[0]
        assert not wait_for(lambda: app.dreamer.steps > steps + 1, 2.0)   # nothing dreamed while asleep
        assert app.capture.slot.latest()[0] == seq                       # and no frame read
        app.commands.run("wake", source="remote")                        # staff, from the phone
        assert not app.tick_schedule()
        assert wait_for(lambda: app.dreamer.steps > steps + 2, 60)
        now[0] = at(2, "09:00")                                          # the wake held until... opening
        app.commands.run("sleep", source="remote")
        assert app.tick_schedule()
        now[0] = at(2, "10:00")                                          # Wednesday opening: awake by itself
        assert not app.tick_schedule()
        assert wait_for(lambda: app.capture.status == "clouds", 30)
    finally:
        app.stop()
