import dataclasses
import tomllib

import pytest

from live import config
from live.config import ConfigError


def test_shipped_config_loads_and_matches_the_dataclass_defaults():
    cfg = config.load()
    data = tomllib.loads(config.DEFAULT_PATH.read_text())
    # every setting in config.toml is documented with its default: one source of truth
    for section in ("source", "dream", "render", "kiosk", "output", "osc", "remote", "midi"):
        defaults = getattr(config.Config(), section)
        for f in dataclasses.fields(defaults):
            assert f.name in data[section], f"config.toml lacks {section}.{f.name}"
            assert getattr(cfg, section).__getattribute__(f.name) == getattr(defaults, f.name), \
                f"config.toml {section}.{f.name} differs from the dataclass default"
    assert len(cfg.presets) >= 3


def test_set_overrides_parse_as_toml():
    cfg = config.load(overrides=["dream.layer=blocks.7", "dream.size=[160, 120]",
                                 "render.blend=0.5", "render.mirror=false", "source.source=clouds"])
    assert cfg.dream.layer == "blocks.7" and cfg.dream.size == (160, 120)
    assert cfg.render.blend == 0.5 and cfg.render.mirror is False and cfg.source.source == "clouds"


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.load().dream.layer = "stem"


BAD = [
    ("[dream]\nlayer = 'blocks.99'\n", r"'dream.layer': layer 'blocks.99' does not exist in efficientnet_lite0; valid layers: stem"),
    ("[dream]\nmodel = 'alexnet'\n", r"'dream.model'.*known models"),
    ("[dream]\nsize = [10, 10]\n", r"'dream.size'.*out of range"),
    ("[dream]\nsize = [320]\n", r"'dream.size' must be \[an integer, an integer\]"),
    ("[dream]\nstrength = 'strong'\n", r"'dream.strength' must be a number"),
    ("[dream]\nstrength = -1\n", r"'dream.strength' = -1.0 is out of range"),
    ("[dream]\nsteps_per_frame = 1.5\n", r"'dream.steps_per_frame' must be an integer"),
    ("[dream]\nprecision = 'fp8'\n", r"'dream.precision' = 'fp8' is not allowed; choose one of auto"),
    ("[dream]\nbackend = 'tensorrt'\n", r"'dream.backend'.*not allowed"),
    ("[dream]\nlayr = 'blocks.3'\n", r"unknown key 'dream.layr'; valid keys in \[dream\]: model, layer"),
    ("[render]\nblend = 1.5\n", r"'render.blend' = 1.5 is out of range; allowed 0.0 to 1.0"),
    ("[render]\nfullscreen = 'yes'\n", r"'render.fullscreen' must be true/false"),
    ("[render]\nscale = 'stretch'\n", r"'render.scale'.*fill, letterbox"),
    ("[kiosk]\npreset_seconds = 0\n", r"'kiosk.preset_seconds' = 0.0 is out of range"),
    ("[camera]\nindex = 0\n", r"unknown section \[camera\]; valid sections"),
    ("dream = 3\n", r"\[dream\] must be a table"),
    ("[[presets]]\nname = 'x'\nlayer = 'nope'\n", r"'presets\[0\].layer': layer 'nope' does not exist"),
    ("[[presets]]\nname = 'x'\nblend = 3\n", r"'presets\[0\].blend' = 3.0 is out of range"),
    ("[[presets]]\nnam = 'x'\n", r"unknown key 'presets\[0\].nam'"),
    ("[dream\nlayer = 1\n", r"not valid TOML"),
    # NaN passes every range test (all comparisons are false): refused by name, everywhere
    ("[dream]\nstrength = nan\n", r"'dream.strength' = nan is not a finite number"),
    ("[dream]\ndecay = inf\n", r"'dream.decay' = inf is not a finite number"),
    ("[render]\nblend = nan\n", r"'render.blend' = nan is not a finite number"),
    ("[motion]\nattack = -nan\n", r"'motion.attack' = nan is not a finite number"),
    ("[watchdog]\ndream_seconds = nan\n", r"'watchdog.dream_seconds' = nan is not a finite number"),
    ("[source]\nreconnect_seconds = inf\n", r"'source.reconnect_seconds' = inf is not a finite number"),
    ("[dream]\nsize = [320, nan]\n", r"'dream.size' must be \[an integer, an integer\]"),
    ("[[presets]]\nname = 'x'\nstrength = nan\n", r"'presets\[0\].strength' = nan is not a finite number"),
]


@pytest.mark.parametrize("text,message", BAD, ids=[m[:30] for _, m in BAD])
def test_bad_config_gives_one_clear_line(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        config.load(path)
    assert "\n" not in str(err.value)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("override,message", [
    ("dream.layer", r"expected section.key=value"),
    ("layer=blocks.3", r"expected section.key=value"),
    ("dream.jitter=-3", r"'dream.jitter' = -3 is out of range"),
    ("presets.name=x", r"presets are edited in the config file"),
    ("nosuch.key=1", r"unknown section \[nosuch\]"),
])
def test_bad_set_gives_one_clear_line(override, message):
    with pytest.raises(ConfigError, match=message):
        config.load(overrides=[override])


def test_missing_config_file_names_it(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        config.load(tmp_path / "nope.toml")


def test_a_live_setting_is_declared_once_and_presets_and_the_state_follow_it():
    """A preset's strength and blend, and the state's starting values, are [dream] and
    [render]'s own: a new default or range written there reaches them all."""
    from live.config import Preset, RenderConfig
    from live.dream.settings import DreamSettings
    from live.state import State, View
    own = {f.name: f for f in dataclasses.fields(DreamSettings)}
    own["blend"] = next(f for f in dataclasses.fields(RenderConfig) if f.name == "blend")
    for f in dataclasses.fields(Preset):
        if f.name != "name":
            assert (f.default, f.metadata) == (own[f.name].default, own[f.name].metadata), f.name
    state = {f.name: f.default for f in dataclasses.fields(State)}
    assert all(state[k] == own[k].default for k in ("layer", "objective", "strength", "blend", "zoom"))
    assert View().blend == own["blend"].default
    with pytest.raises(ConfigError, match=r"'presets\[0\].strength' = 0.9 is out of range; allowed 0.0 to 0.5"):
        config.from_dict({"presets": [{"strength": 0.9}]})
