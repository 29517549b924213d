"""The web console in a real browser (Debian's chromium driven by selenium through Debian's
chromedriver; nothing downloaded): the demo config with the shipped Hawkeye model, replaying
vtest.avi behind a token, clicked through sign-in, the camera grid, a camera's page (snapshot,
timeline, chat, a zone drawn and applied), the events list and an event page (keyframe, clip,
review), and the labels the review exports; and, over an outbox alone, a drone's event on its map.

HAWKWATCH_SCREENSHOTS=docs/console pytest tests/test_console.py   # also keeps the screenshots there
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.harness import ROOT, demo_config
from tests.servers import free_port

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
TOKEN = "console-t0k"

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                                                   reason="needs Debian's chromium and chromium-driver (make sysdeps installs them)")]


def _browser(width: int = 1360, height: int = 980):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--window-size={width},{height}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def _get(url: str, token: str | None = TOKEN):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def console(tmp_path_factory, vtest):
    """The demo pipeline (looping replay, event thresholds every second crosses) serving
    the console behind a token; yields its URL once an event's keyframe and clip are written."""
    tmp = tmp_path_factory.mktemp("console")
    port = free_port()
    config = demo_config(tmp, f"tcp://127.0.0.1:{free_port()}",
                         http={"endpoint": f"127.0.0.1:{port}", "token_env": "HAWKWATCH_CONSOLE_TOKEN"})
    import yaml
    cfg = yaml.safe_load(config.read_text())
    # thresholds every second crosses: the shipped model is quiet on vtest, and the test needs events
    cfg.update(replay="realtime", events={"open_threshold": 1e-4, "close_threshold": 0.0, "min_duration_s": 1.0,
                                          "close_after_s": 1.0, "max_event_s": 10.0},
               normal={"enabled": True, "warmup_minutes": 60, "store": str(tmp / "normal")},
               recordings={"folder": str(tmp / "recordings"), "segment_s": 4.0})
    # a second camera as an IP camera sends it (H.264), recorded: its footage plays in the browser
    from stream.ingest.clips import camera_clip
    cfg["cameras"]["gate"] = {"path": str(camera_clip(vtest, tmp / "gate.mp4", 30.0)), "record": True}
    # and one that refuses every connection: the console says why it is not streaming
    cfg["cameras"]["dead"] = {"url": f"rtsp://127.0.0.1:{free_port()}/stream1",
                              "ingest": {"backoff_initial_s": 0.5, "backoff_max_s": 2.0}}
    config.write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_pipeline.py"), "--config", str(config), "--loop"],
                            cwd=ROOT, env={**os.environ, "HAWKWATCH_CONSOLE_TOKEN": TOKEN},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    try:
        while True:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "no event with its evidence within 240 s"
            try:
                events = _get(f"{url}/api/events?camera=lobby")["events"]
            except (urllib.error.URLError, ConnectionError):
                events = []
            if any({e["kind"] for e in ev["evidence"]} >= {"keyframe", "clip"} for ev in events):
                break
            time.sleep(1.0)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        finally:
            proc.kill()


@pytest.fixture(scope="module")
def browser():
    driver = _browser()
    yield driver
    driver.quit()


@pytest.fixture
def signed_in(console, browser):
    """The browser signed in to the console, whichever tests ran before (each test stands alone)."""
    from selenium.webdriver.common.by import By
    browser.get(console + "/")
    if "/login" in browser.current_url:
        browser.find_element(By.NAME, "token").send_keys(TOKEN)
        browser.find_element(By.CSS_SELECTOR, "form.login button").click()
        _wait(browser, lambda d: "/login" not in d.current_url, what="signed in")
    return browser


def _shot(driver, name: str) -> None:
    folder = os.environ.get("HAWKWATCH_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        size = driver.get_window_size()
        driver.execute_script("window.scrollTo(0, 0)")
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(size["width"], max(size["height"], height + 140))   # the whole page
        import io

        from PIL import Image
        Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB").save(
            Path(folder) / f"{name}.jpg", quality=80, optimize=True)      # a README picture: a tenth of the PNG
        driver.set_window_size(size["width"], size["height"])


def _wait(driver, condition, timeout: float = 30.0, what: str = ""):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, timeout, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
                         ).until(condition, message=what)


def _image_shown(driver, css: str):
    """A condition: the image matching `css` has loaded a picture."""
    def shown(d):
        return d.execute_script("const i = document.querySelector(arguments[0]); "
                                "return i && i.complete && i.naturalWidth > 0 ? i.naturalWidth : 0;", css)
    return shown


def test_the_console_signs_in_and_shows_every_camera_live(console, browser):
    from selenium.webdriver.common.by import By
    with pytest.raises(urllib.error.HTTPError) as refused:          # the API behind the same token
        _get(f"{console}/api/cameras", token=None)
    assert refused.value.code == 401
    browser.get(console + "/login")
    browser.delete_all_cookies()                                    # signed out, whichever tests ran before
    browser.get(console + "/")
    _wait(browser, lambda d: "/login" in d.current_url, what="a page without the token goes to sign-in")
    browser.find_element(By.NAME, "token").send_keys("not-it")
    browser.find_element(By.CSS_SELECTOR, "form.login button").click()
    _wait(browser, lambda d: "That is not the token" in d.page_source, what="a wrong token is refused")
    browser.find_element(By.NAME, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "form.login button").click()
    card = _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, '.card[data-camera="lobby"]'))
    lobby_img = '.card[data-camera="lobby"] img.snapshot'
    assert _wait(browser, _image_shown(browser, lobby_img), what="the snapshot loads") > 0
    first = browser.execute_script("return document.querySelector(arguments[0]).src", lobby_img)
    _wait(browser, lambda d: d.execute_script("return document.querySelector(arguments[0]).src", lobby_img) != first,
          timeout=10, what="the snapshot is refreshed")
    badge = card.find_element(By.CSS_SELECTOR, '[data-field="state"]')
    assert badge.text == "streaming" and "ok" in badge.get_attribute("class")
    assert not card.find_element(By.CSS_SELECTOR, '[data-field="detail"]').is_displayed()
    dead = browser.find_element(By.CSS_SELECTOR, '.card[data-camera="dead"]')
    why = _wait(browser, lambda d: dead.find_element(By.CSS_SELECTOR, '[data-field="detail"]').text or None,
                what="a dead camera says why")
    assert "refused" in why.lower()
    _wait(browser, lambda d: "windows" in card.find_element(By.CSS_SELECTOR, '[data-field="stats"]').text)
    _shot(browser, "cameras")


def test_a_camera_page_has_its_timeline_chat_and_a_zone_drawn_on_its_snapshot(console, browser, signed_in):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    browser.get(console + "/")
    browser.find_element(By.CSS_SELECTOR, '.card[data-camera="lobby"]').click()
    _wait(browser, lambda d: d.current_url.endswith("/cameras/lobby"))
    assert _wait(browser, _image_shown(browser, "#zone-editor img.snapshot")) > 0
    assert _wait(browser, _image_shown(browser, "#timeline"), what="the timeline draws") > 0
    svg = urllib.request.urlopen(urllib.request.Request(f"{console}/cameras/lobby/timeline.svg",
                                                        headers={"Authorization": f"Bearer {TOKEN}"})).read().decode()
    assert 'class="scores"' in svg and 'class="event' in svg     # the score curve and the events on it
    assert browser.find_elements(By.CSS_SELECTOR, "table.events a.event-link")

    box = browser.find_element(By.CSS_SELECTOR, "form#chat input[name=question]")
    box.send_keys("Is anyone running?")
    browser.find_element(By.CSS_SELECTOR, "form#chat button").click()
    answer = _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#chat-log li.a"), timeout=60,
                   what="the chat answers")
    assert "windows" in answer.text and answer.text.split("(windows")[0].strip()

    browser.find_element(By.CSS_SELECTOR, "details.zones-panel summary").click()
    image = browser.find_element(By.CSS_SELECTOR, "#zone-editor img.snapshot")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", image)
    w, h = image.size["width"], image.size["height"]
    for fx, fy in ((0.1, 0.5), (0.9, 0.5), (0.9, 0.95), (0.1, 0.95)):   # the lower half of the lobby
        ActionChains(browser).move_to_element_with_offset(image, int((fx - 0.5) * w), int((fy - 0.5) * h)).click().perform()
    browser.find_element(By.ID, "zone-name").send_keys("floor")
    browser.find_element(By.ID, "zone-add").click()
    assert "floor (include, 4 corners)" in browser.find_element(By.ID, "zone-list").text
    browser.find_element(By.ID, "zone-apply").click()
    yaml_box = _wait(browser, lambda d: d.find_element(By.ID, "zone-yaml") if d.find_element(By.ID, "zone-yaml").text
                     else None)
    assert "floor" in yaml_box.text and "kind: include" in yaml_box.text and "kept across restarts in" in yaml_box.text
    zones = _get(f"{console}/api/cameras/lobby/zones")
    (xs, ys) = zip(*zones["floor"]["points"])
    assert zones["floor"]["kind"] == "include" and 0.05 < min(xs) < 0.15 and 0.85 < max(xs) < 0.95 \
        and 0.45 < min(ys) < 0.55, zones
    _shot(browser, "camera")


@pytest.mark.parametrize("camera, route", [("gate", "h264, as the camera sends it"), ("lobby", "transcoded from msmpeg4")])
def test_live_video_plays_at_the_cameras_rate_near_the_live_edge_with_the_overlay_a_toggle(console, browser,
                                                                                           signed_in, camera, route):
    from selenium.webdriver.common.by import By
    browser.get(f"{console}/cameras/{camera}")
    state = _wait(browser, lambda d: d.find_element(By.ID, "live-state").text or None, what="the live view starts")
    assert route in state
    play = ("const v = document.getElementById('live-player'); return v && v.readyState >= 2 && !v.paused ? "
            "[v.currentTime, v.videoWidth, v.buffered.length ? v.buffered.end(v.buffered.length - 1) - v.currentTime : 0,"
            " v.getVideoPlaybackQuality().totalVideoFrames] : null;")
    first = _wait(browser, lambda d: d.execute_script(play), timeout=30, what="the live video plays")
    time.sleep(3.0)
    later = browser.execute_script(play)
    assert first[1] == 768 and later[0] - first[0] > 2.0                 # it moves, in real time
    assert (later[3] - first[3]) / (later[0] - first[0]) > 8              # at the camera's 10 fps, not a still a second
    assert later[2] < 1.5                                                 # and stays near the live edge
    assert browser.find_element(By.ID, "live").is_displayed()
    assert not browser.find_element(By.ID, "zone-editor").is_displayed()
    browser.find_element(By.ID, "overlay-toggle").click()                 # the scene drawn on the last window
    assert browser.find_element(By.ID, "zone-editor").is_displayed() and not browser.find_element(By.ID, "live").is_displayed()
    info = _get(f"{console}/api/cameras/{camera}/live")
    assert info["viewers"] >= 1 and info["transcoded"] == (camera == "lobby")
    _shot(browser, f"live-{camera}")


def test_a_click_on_the_timeline_plays_the_recorded_footage_from_there_and_a_minute_exports(console, browser,
                                                                                            signed_in):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    _wait(browser, lambda d: len(_get(f"{console}/api/cameras/gate/recordings")) >= 3, timeout=60,
          what="three segments recorded")
    browser.get(console + "/cameras/gate")
    image = browser.find_element(By.CSS_SELECTOR, "#timeline.seekable")
    span = _wait(browser, lambda d: d.execute_script(
        "const i = document.getElementById('timeline'); return i.dataset.start ? "
        "[+i.dataset.start, +i.dataset.end, i.dataset.plot] : null;"), what="the timeline's span")
    start, end, plot = span
    left, width, total = (float(v) for v in plot.split(","))
    t = time.time() - 8                                  # a closed segment's footage
    x = (left + width * (t - start) / (end - start)) / total
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", image)
    ActionChains(browser).move_to_element_with_offset(image, int((x - 0.5) * image.size["width"]), 0).click().perform()
    playing = _wait(browser, lambda d: d.execute_script(
        "const v = document.getElementById('player'); return v && v.readyState >= 2 && v.currentTime > 0.2 ? "
        "[v.currentTime, v.videoWidth] : null;"), timeout=30, what="the footage plays")
    assert playing[1] == 768                               # the camera's own picture, as recorded
    assert browser.find_element(By.ID, "playhead").text not in ("", "–")
    href = browser.find_element(By.ID, "export").get_attribute("href")
    assert "/api/cameras/gate/export.mp4?start=" in href
    req = urllib.request.Request(href, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        data = r.read()
    assert data[4:8] == b"ftyp" and len(data) > 10_000
    _shot(browser, "recording")


def test_an_event_page_plays_its_evidence_and_its_review_becomes_a_label(console, browser, signed_in):
    from selenium.webdriver.common.by import By
    from training.data import read_ground_truth
    browser.get(console + "/events?camera=lobby")
    rows = browser.find_elements(By.CSS_SELECTOR, "table.events tbody tr")
    assert rows
    assert _wait(browser, _image_shown(browser, "table.events td.thumb img"), what="a row's thumbnail") > 0
    assert ":" in rows[0].find_elements(By.TAG_NAME, "td")[5].text          # its span in wall-clock time
    events = _get(f"{console}/api/events?camera=lobby")["events"]
    with_files = next(e for e in events if {f["kind"] for f in e["evidence"]} >= {"keyframe", "clip"})
    browser.find_element(By.CSS_SELECTOR, f'a[href="/events/{with_files["alert_id"]}"]').click()
    _wait(browser, lambda d: d.current_url.endswith(with_files["alert_id"]))
    assert _wait(browser, _image_shown(browser, "img.keyframe"), what="the keyframe shows") > 0
    duration = _wait(browser, lambda d: d.execute_script(
        "const v = document.querySelector('video.clip'); return v && v.readyState >= 1 ? v.duration : 0;"),
        what="the clip's metadata loads")
    assert duration > 1.0
    assert with_files["category"] in browser.find_element(By.TAG_NAME, "h1").text
    assert "Not reviewed yet" in browser.find_element(By.CSS_SELECTOR, ".review-state").text
    browser.find_element(By.CSS_SELECTOR, "form.review input[name=note]").send_keys("two people, one chasing")
    browser.find_element(By.CSS_SELECTOR, "form.review button.confirm").click()
    state = _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, ".review-state")
                  if "Reviewed" in d.find_element(By.CSS_SELECTOR, ".review-state").text else None)
    assert "confirmed" in state.text and "two people, one chasing" in state.text
    _shot(browser, "event")

    labels = _get(f"{console}/api/labels")
    entry = labels["database"]["vtest.avi"]
    (item,) = [a for a in entry["annotations"] if a["alert_id"] == with_files["alert_id"]]
    assert item["label"] == with_files["category"] and item["note"] == "two people, one chasing"
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"labels-{os.getpid()}.json"
    path.write_text(json.dumps(labels))
    try:
        truth = read_ground_truth(path)                    # what training reads
    finally:
        path.unlink()
    assert [(s.label, s.start) for s in truth["vtest.avi"]["segments"]] == \
        [(a["label"], a["segment"][0]) for a in entry["annotations"]]



@pytest.fixture(scope="module")
def placed(tmp_path_factory):
    """The console over an outbox holding a drone's event placed on the ground (`flown`) and a fixed
    camera's (`fixed`), served on loopback with no pipeline running; yields its URL and the alerts."""
    from stream.config import HttpConfig
    from stream.http import HttpServer
    from tests.harness import OutboxPipeline, placed_outbox
    box, stored = placed_outbox(tmp_path_factory.mktemp("placed") / "outbox.sqlite")
    port = free_port()
    server = HttpServer(OutboxPipeline(box), HttpConfig(endpoint=f"127.0.0.1:{port}"))
    server.start()
    try:
        yield f"http://127.0.0.1:{port}", stored
    finally:
        server.close()
        box.close()


def test_a_drone_events_page_maps_where_it_is_and_a_fixed_cameras_has_no_map(placed, browser):
    from selenium.webdriver.common.by import By
    url, stored = placed
    lon, lat, _ = stored["flown"]["geometry"]["features"][0]["geometry"]["coordinates"]
    browser.get(url + "/events")
    rows = {r.find_element(By.CSS_SELECTOR, "a.event-link").get_attribute("href").rsplit("/", 1)[1]: r
            for r in browser.find_elements(By.CSS_SELECTOR, "table.events tbody tr")}
    assert rows["flown"].find_element(By.CSS_SELECTOR, ".located").text == f"{lat:.5f}, {lon:.5f}"
    assert rows["flown"].find_element(By.CSS_SELECTOR, ".located svg.pin").size["width"] > 0   # no emoji font needed
    assert not rows["fixed"].find_elements(By.CSS_SELECTOR, ".located")
    rows["flown"].find_element(By.CSS_SELECTOR, "a.event-link").click()
    svg = _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "svg.geomap"), what="the map")
    assert svg.size["width"] > 300 and svg.size["height"] > 200
    # the event's dot lies inside the drawn footprint, and its error circle is around it, as laid out on screen
    inside = browser.execute_script("""
        const svg = document.querySelector('svg.geomap'), foot = svg.querySelector('polygon.footprint');
        const dot = svg.querySelector('g.event circle'), ce = svg.querySelector('circle.ce');
        const p = svg.createSVGPoint(); p.x = dot.cx.baseVal.value; p.y = dot.cy.baseVal.value;
        return [foot.isPointInFill(p), foot.points.numberOfItems, ce.r.baseVal.value,
                svg.querySelectorAll('g.person').length, svg.querySelectorAll('g.object').length];""")
    assert inside[:2] == [True, 5] and inside[2] > 1.0 and inside[3:] == [2, 1]
    where = browser.find_element(By.CSS_SELECTOR, "dd.where")
    ce = stored["flown"]["geometry"]["features"][0]["properties"]["ce"]
    assert f"{lat:.6f}, {lon:.6f} ± {ce:.1f} m" in where.text
    osm = where.find_element(By.LINK_TEXT, "open in OpenStreetMap").get_attribute("href")
    assert osm == f"https://www.openstreetmap.org/?mlat={lat:.6f}&mlon={lon:.6f}#map=18/{lat:.6f}/{lon:.6f}"
    download = where.find_element(By.LINK_TEXT, "download GeoJSON").get_attribute("href")
    assert _get(download, token=None) == stored["flown"]["geometry"]
    _shot(browser, "event-map")
    browser.get(url + "/events/fixed")
    assert "loitering" in browser.find_element(By.TAG_NAME, "h1").text
    assert not browser.find_elements(By.CSS_SELECTOR, "svg.geomap")
    assert not browser.find_elements(By.CSS_SELECTOR, "dd.where")


def test_a_false_alarm_joins_the_cameras_normal_which_the_camera_page_shows_and_resets(console, browser, signed_in):
    from selenium.webdriver.common.by import By
    browser.get(console + "/cameras/lobby")
    normal = browser.find_element(By.CSS_SELECTOR, "[data-normal-state]")
    assert normal.get_attribute("data-normal-state") == "learning" and "of 60.0" in normal.text
    event = _get(f"{console}/api/events?camera=lobby")["events"][0]
    req = urllib.request.Request(f"{console}/api/events/{event['alert_id']}/review", method="PUT",
                                 data=json.dumps({"label": "false_alarm"}).encode(),
                                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        answer = json.loads(r.read())
    assert answer["label"] == "false_alarm" and "learnt this event" in answer["normal"], answer
    deadline = time.monotonic() + 30                      # the next health message carries it
    while next(c for c in _get(f"{console}/api/cameras") if c["camera"] == "lobby")["normal"]["reviewed"] < 1:
        assert time.monotonic() < deadline, "health never said the false alarm was learnt"
        time.sleep(0.5)
    browser.get(console + "/cameras/lobby")
    assert "1 false alarms learnt" in browser.find_element(By.CSS_SELECTOR, "section.side").text
    _shot(browser, "camera-normal")
    browser.find_element(By.CSS_SELECTOR, 'form[action="/cameras/lobby/normal/reset"] button').click()
    browser.switch_to.alert.accept()
    _wait(browser, lambda d: "0 false alarms learnt" in d.find_element(By.CSS_SELECTOR, "section.side").text,
          what="the reset shows")
