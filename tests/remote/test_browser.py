"""The web remote's page in a real headless Chromium (Debian's chromium and chromium-driver,
driven by selenium) against the whole app recording headless: the token in the URL
becomes a cookie, a preset pressed on the page changes the state, the layer menu and the
freeze button work, a key press on the installation reaches the page over the WebSocket,
and the preview shows the dream. The page is photographed at a phone's size
(DREAMCAM_SCREENSHOT=PATH also keeps the picture, e.g. docs/remote.png).

Skipped only where the browser cannot be installed or started; under CI (CI set) a
missing browser fails, since `make test` installs it."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import alongside, small_config, wait_for
from live.app import App
from live.headless import run_headless

CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars")
PHONE = {"deviceMetrics": {"width": 390, "height": 800, "pixelRatio": 2.0}}
TOKEN = "browser-test-token-0123456789abcdef"


def unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; make test installs chromium and chromium-driver (apt-get, as root)")
    pytest.skip(reason)


@pytest.fixture
def chrome(tmp_path):
    if not (CHROMIUM.exists() and DRIVER.exists()):
        unavailable(f"{CHROMIUM} or {DRIVER} is missing")
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in FLAGS + (f"--user-data-dir={tmp_path / 'profile'}",):
        opts.add_argument(flag)
    opts.add_experimental_option("mobileEmulation", PHONE)
    opts.page_load_strategy = "eager"       # the MJPEG <img> never finishes loading
    try:
        driver = webdriver.Chrome(options=opts, service=Service(str(DRIVER)))
    except WebDriverException as exc:
        unavailable(f"chromium does not start here: {exc.msg}")
    yield driver
    driver.quit()


def drive(driver, app: App, shot: Path) -> None:
    """Use the page as staff would, while the installation records."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
    state = app.state
    assert wait_for(lambda: app.remotes.url is not None and app.dreamer.dreams.latest()[0] > 0, 120)
    driver.get(app.remotes.url.replace(app.remotes.url.split("/")[2], f"127.0.0.1:{app.remotes.web.port}"))
    wait = WebDriverWait(driver, 60)
    assert driver.current_url.endswith("/") and "token" not in driver.current_url   # now a cookie
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#presets button")) == len(state.presets))
    driver.find_element(By.XPATH, "//div[@id='presets']/button[3]").click()
    assert wait_for(lambda: state.preset == 2)
    wait.until(lambda d: "on" in d.find_element(By.XPATH, "//div[@id='presets']/button[3]").get_attribute("class"))
    Select(driver.find_element(By.ID, "layer")).select_by_value("blocks.11")
    assert wait_for(lambda: state.layer == "blocks.11")
    driver.find_element(By.ID, "freeze").click()
    assert wait_for(lambda: state.frozen)
    app.commands.run("deeper")                               # a key press at the installation
    wait.until(lambda d: d.find_element(By.ID, "layer").get_attribute("value") == "blocks.12")
    driver.find_element(By.ID, "freeze").click()
    assert wait_for(lambda: not state.frozen)
    wait.until(lambda d: "faults 0" in d.find_element(By.ID, "health-line").text)   # /api/health with the cookie
    seq = app.dreamer.dreams.latest()[0]
    assert wait_for(lambda: app.dreamer.dreams.latest()[0] > seq + 30, 300)   # let the new dream grow
    wait.until(lambda d: d.execute_script("const i = document.getElementById('preview');"
                                          "return i.complete && i.naturalWidth > 0;"))
    driver.save_screenshot(str(shot))


def test_a_preset_pressed_on_the_page_changes_the_state(chrome, tmp_path, backbone):
    cfg = small_config("remote.enabled=true", "remote.port=0", f"remote.token=\"{TOKEN}\"", "render.width=480",
                       "render.height=270", "dream.size=[192, 108]", "remote.stream_fps=15")
    app = App(cfg, "clouds", backbone=backbone)
    shot = tmp_path / "remote.png"
    assert alongside(app, lambda: drive(chrome, app, shot),
                     lambda: run_headless(app, None, tmp_path / "rec.mp4", seconds=900)) == 0
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[1] == 780              # a phone's width at pixel ratio 2
    preview = img[100:400, 40:740].astype(float)                 # below the title: the dream, not a black box
    assert preview.std() > 20
    if os.environ.get("DREAMCAM_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["DREAMCAM_SCREENSHOT"])
    assert np.count_nonzero(img.std(axis=2) > 0) > 0


def test_a_souvenir_asked_for_on_the_page_comes_from_the_qr_code_on_the_screen(chrome, tmp_path, backbone):
    """Staff press "souvenir" on the phone; the installation's screen shows the QR code; its
    URL opens in the browser as the JPEG without the token; a guess and, later, the expired
    link are 404."""
    import time

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from conftest import decode_qr, http, mjpeg_frame, souvenir_config
    from live.windowed import WindowLoop
    cfg = souvenir_config(TOKEN, tmp_path / "sv")
    app = App(cfg, "clouds", backbone=backbone)
    seen: dict = {}

    def staff() -> None:
        assert wait_for(lambda: app.remotes.url is not None and app.dreamer.steps > 3, 120)
        port = app.remotes.web.port
        api = f"http://127.0.0.1:{port}"
        chrome.get(app.remotes.url.replace(app.remotes.url.split("/")[2], f"127.0.0.1:{port}"))
        wait = WebDriverWait(chrome, 60)
        wait.until(lambda d: d.find_element(By.ID, "souvenir").is_displayed())
        chrome.find_element(By.ID, "souvenir").click()
        wait.until(lambda d: "souvenir" in d.find_element(By.ID, "message").text)
        assert wait_for(lambda: loop.comp is not None and loop.comp.panels.souvenir is not None, 60)
        seen["qr"] = ""                                 # the preview runs at 8 fps: its newest may predate the code

        def scanned() -> bool:
            seen["qr"] = decode_qr(mjpeg_frame(api + "/stream.mjpg", TOKEN))
            return seen["qr"].endswith(".jpg")
        assert wait_for(scanned, 60)
        url = seen["qr"]
        local = url.replace(url.split("/")[2], f"127.0.0.1:{port}")
        chrome.delete_all_cookies()                                      # a visitor's phone: no token at all
        chrome.get(local)
        wait.until(lambda d: d.execute_script("const i = document.images[0]; return i && i.complete && "
                                              "i.naturalWidth;") == 640)
        seen["status"], seen["body"] = http("GET", local, raw_reply=True)
        seen["guess"] = http("GET", local[:-10] + "xyz123.jpg")[0]
        app.souvenirs.clock = lambda: time.time() + 3600
        seen["expired"] = http("GET", local)[0]
    loop = WindowLoop(app, seconds=600)
    assert alongside(app, staff, loop.run) == 0
    assert seen["status"] == 200 and seen["body"][:3] == b"\xff\xd8\xff"      # a JPEG
    assert seen["guess"] == 404 and seen["expired"] == 404
