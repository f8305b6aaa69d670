"""The HTML report in headless Chromium, at a desktop width and at a phone's 390 px: every
image loads at the size its tag announces (so lazy loading does not grow the page), every
audio element loads, every in-page anchor resolves, and no table is wider than the screen.

Chromium is driven through its DevTools protocol on a pipe (``--remote-debugging-pipe``:
JSON messages ending in a NUL byte on file descriptors 3 and 4), in real time: the
``--virtual-time-budget`` of ``--dump-dom`` races media loads (it ran out in 2 of 16 tries
here). The viewport is set by ``Emulation.setDeviceMetricsOverride``, since a headless
window cannot be narrower than 500 px.
"""

from __future__ import annotations

import fcntl
import html
import json
import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from genex.pipeline.report.html import build_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (Debian: apt-get install "
                             "--no-install-recommends chromium; scripts/install-system-packages.sh)")
PHONE, DESKTOP = 390, 1280
TIMEOUT = 120.0  # seconds for one page's whole check

# Runs in the report's page; resolves to what it found.
CHECK = r"""(async function () {
  function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }
  var root = document.documentElement;
  var result = {viewport: root.clientWidth};
  // lazy images load once they come near the view: scroll through the page
  for (var y = 0; y < root.scrollHeight; y += 300) { window.scrollTo(0, y); await sleep(10); }
  window.scrollTo(0, 0);
  await Promise.all(Array.prototype.map.call(document.images, function (img) {
    return img.complete ? null : new Promise(function (r) {
      img.addEventListener("load", r, {once: true}); img.addEventListener("error", r, {once: true});
    });
  }));
  result.height = root.scrollHeight;
  result.images = Array.prototype.map.call(document.images, function (img) {
    return {src: img.getAttribute("src"), loaded: img.complete && img.naturalWidth > 0,
            natural: [img.naturalWidth, img.naturalHeight],
            announced: [Number(img.getAttribute("width")), Number(img.getAttribute("height"))],
            right: img.getBoundingClientRect().right};
  });
  document.querySelectorAll("details").forEach(function (d) { d.open = true; });  // metrics
  await sleep(50);
  result.page_width = root.scrollWidth;
  result.tables = Array.prototype.map.call(document.querySelectorAll("table"), function (t) {
    var box = t.parentElement;   // the scroll box: a table may be wider than it, not the box
    return {caption: (box.getAttribute("aria-label") || "").slice(0, 60),
            right: t.getBoundingClientRect().right, box_right: box.getBoundingClientRect().right,
            scrolls: getComputedStyle(box).overflowX === "auto"};
  });
  result.anchors = Array.prototype.map.call(document.querySelectorAll('a[href^="#"]'), function (a) {
    var id = decodeURIComponent(a.getAttribute("href").slice(1));
    return [a.getAttribute("href"), document.getElementById(id) !== null];
  });
  result.audio = await Promise.all(Array.prototype.map.call(document.querySelectorAll("audio"),
    function (el) {
      var source = el.querySelector("source"), src = (source || el).getAttribute("src");
      return new Promise(function (resolve) {
        function done(ok) { resolve([src, ok ? el.duration : null]); }
        if (el.readyState >= 1) return done(true);
        el.addEventListener("loadedmetadata", function () { done(true); }, {once: true});
        (source || el).addEventListener("error", function () { done(false); }, {once: true});
        setTimeout(function () { done(false); }, 30000);   // real time: never loading fails
        el.preload = "metadata";  // the report's preload="none" waits for a click
        el.load();
      });
    }));
  return result;
})()"""
BARE_HEIGHT = "document.documentElement.scrollHeight"


class DevTools:
    """A headless Chromium and the least of the DevTools protocol: commands, their replies."""

    def __init__(self, profile: Path):
        to_chrome, self._write = os.pipe()
        self._read, from_chrome = os.pipe()
        cmd = [CHROMIUM, "--headless", "--disable-gpu", "--no-first-run", "--mute-audio",
               "--allow-file-access-from-files", "--remote-debugging-pipe",
               f"--user-data-dir={profile}", "about:blank"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.insert(1, "--no-sandbox")  # Chromium's sandbox refuses to run as root

        def pipes_at_3_and_4():  # in the child; dup2 leaves the copies inheritable
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_chrome, from_chrome)]
            os.dup2(high[0], 3)  # via fds >= 10: a pipe may itself sit at 3 or 4
            os.dup2(high[1], 4)

        profile.mkdir(parents=True, exist_ok=True)
        self.log = profile / "chromium.log"  # a file: an unread pipe could fill and stall it
        self._log_file = self.log.open("wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self._log_file,
                                     close_fds=False, preexec_fn=pipes_at_3_and_4,
                                     env={**os.environ, "HOME": str(profile)})
        os.close(to_chrome)
        os.close(from_chrome)
        self._buffer, self._next_id = b"", 0
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def send(self, method: str, session: str | None = None, **params) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT
        while True:
            while b"\0" not in self._buffer:
                left = deadline - time.monotonic()
                ready, _, _ = select.select([self._read], [], [], max(left, 0))
                if not ready:
                    raise TimeoutError(f"Chromium did not answer {method} in {TIMEOUT:.0f} s")
                chunk = os.read(self._read, 1 << 16)
                if not chunk:
                    raise RuntimeError(f"Chromium exited during {method}: "
                                       f"{self.log.read_text(errors='replace')[-2000:]}")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def page(self, method: str, **params) -> dict:
        return self.send(method, session=self.session, **params)

    def load(self, url: str) -> None:
        self.page("Page.navigate", url=url)
        deadline = time.monotonic() + TIMEOUT
        while self.evaluate("document.readyState") != "complete":
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not finish loading in {TIMEOUT:.0f} s")
            time.sleep(0.05)

    def evaluate(self, expression: str):
        reply = self.page("Runtime.evaluate", expression=expression, awaitPromise=True,
                          returnByValue=True)
        if "exceptionDetails" in reply:
            raise RuntimeError(f"the check failed in the page: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._read)
        os.close(self._write)
        self._log_file.close()


def browser_check(report: Path, width: int) -> dict:
    """Load ``report/index.html`` in headless Chromium at ``width`` CSS px; what the page showed.

    A copy of the page with every image's src and alt removed gives the height the page has
    before any image arrives: Chromium lays such an image out as it does while the file is on
    its way (a box of the announced size, or nothing when no size is announced).
    """
    page = (report / "index.html").read_text(encoding="utf-8")
    bare = report / "index.bare.html"
    bare.write_text(re.sub(r'<img src="[^"]*"([^>]*?) alt="[^"]*"', r"<img\1", page),
                    encoding="utf-8")
    browser = DevTools(report.parent / f".chromium-{width}")  # a profile of its own
    try:
        browser.page("Emulation.setDeviceMetricsOverride", width=width, height=844,
                     deviceScaleFactor=1, mobile=width <= PHONE)
        browser.load(bare.resolve().as_uri())
        unloaded = browser.evaluate(BARE_HEIGHT)
        browser.load((report / "index.html").resolve().as_uri())
        result = browser.evaluate(CHECK)
    finally:
        browser.close()
        bare.unlink()
    return {**result, "height_images_unloaded": unloaded}


def problems(check: dict) -> list[str]:
    """Everything the brief's reader would trip over, one line each (empty: all is well)."""
    out = []
    if abs(check["height"] - check["height_images_unloaded"]) > 2:
        out.append(f"the page grows from {check['height_images_unloaded']} to {check['height']} px "
                   f"as its images load")
    if check["page_width"] > check["viewport"]:
        out.append(f"the page is {check['page_width']} px wide on a {check['viewport']} px screen")
    for img in check["images"]:
        if not img["loaded"]:
            out.append(f"image {img['src']} did not load")
        elif img["natural"] != img["announced"]:
            out.append(f"image {img['src']} is {img['natural']} px, its tag says {img['announced']}")
        if img["right"] > check["viewport"] + 0.5:
            out.append(f"image {img['src']} reaches past the screen ({img['right']:.0f} px)")
    for src, duration in check["audio"]:
        if not duration or duration <= 0:
            out.append(f"audio {src} did not load")
    out += [f"anchor {href} points nowhere" for href, ok in check["anchors"] if not ok]
    for table in check["tables"]:
        seen_right = table["box_right"] if table["scrolls"] else table["right"]
        if seen_right > check["viewport"] + 0.5:
            out.append(f"table {table['caption']!r} reaches past the screen "
                       f"({seen_right:.0f} px on {check['viewport']} px)")
    return out


def relative_links_exist(report: Path) -> list[str]:
    """Every src/href to a file of the report exists (fragments are the browser's check)."""
    page = (report / "index.html").read_text(encoding="utf-8")
    targets = re.findall(r'(?:src|href)="([^"#][^"]*)"', page)
    return [t for t in targets if not (report / html.unescape(t)).is_file()]


# ---------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A small report with every block type, a dataset and a study sharing an id, a table
    with many columns and long cells, a large image and real audio."""
    import numpy as np
    import soundfile as sf
    from PIL import Image

    root = tmp_path_factory.mktemp("browser")
    sections = []
    for group, order in (("Datasets", 1), ("Studies", 2)):
        folder = root / "sections" / group
        folder.mkdir(parents=True)
        Image.new("RGB", (1200, 900), "steelblue").save(folder / "wide.png")
        Image.new("RGB", (300, 80), "orange").save(folder / "small.png")
        t = np.arange(4000) / 8000
        sf.write(str(folder / "tone.wav"), (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),
                 8000, subtype="PCM_16")
        (folder / "metrics.json").write_text(json.dumps(
            {"a_rather_long_metric_name_without_spaces": {"nested_key_that_is_long": 0.123456,
                                                          "list": list(range(40))}}))
        columns = ["method"] + [f"{m} (ours)" for m in "PRF"] + [f"{m} (paper)" for m in "PRF"]
        rows = [[f"method_with_a_long_name_{i}", 76.36, 68.9, 72.08, 79.74, 63.73, 70.84]
                for i in range(3)]
        (folder / "section.json").write_text(json.dumps({
            "id": "nsynth", "title": f"nsynth ({group})", "group": group, "order": order,
            "blocks": [
                {"type": "text", "text": "A long word: `results/nsynth/metrics.json.table1."
                                         "synth_lead.paper_magnitude` and a [link](#sec-studies--nsynth)."},
                {"type": "table", "caption": "Table 1 (wide)", "columns": columns, "rows": rows},
                {"type": "figure", "path": "wide.png", "caption": "A wide figure"},
                {"type": "figure", "path": "small.png"},
                {"type": "audio", "path": "tone.wav", "caption": "a tone"},
                {"type": "metrics", "path": "metrics.json"},
            ]}))
        sections.append(folder)
    out = root / "report"
    build_report(sections, out, {"title": "browser check"})
    return out


# ---------------------------------------------------------------------------- tests

def test_every_file_the_page_names_exists(report):
    assert relative_links_exist(report) == []


@needs_chromium
@pytest.mark.parametrize("width", [PHONE, DESKTOP])
def test_the_report_in_chromium(report, width):
    check = browser_check(report, width)
    assert len(check["images"]) == 4 and len(check["audio"]) == 2 and len(check["anchors"]) >= 4
    assert len(check["tables"]) == 4
    assert problems(check) == []
    if width == PHONE:
        assert check["viewport"] <= PHONE
        assert any(t["scrolls"] for t in check["tables"])


@needs_chromium
def test_the_check_sees_what_the_issue_saw(report, tmp_path):
    """The check can fail: sizes stripped from the tags, a table without its scroll box, a
    missing image and sound, and a dangling anchor are each reported."""
    broken = tmp_path / "broken"
    shutil.copytree(report, broken)
    index = broken / "index.html"
    page = index.read_text(encoding="utf-8")
    page = re.sub(r' width="\d+" height="\d+"', "", page)
    page = page.replace('<div class="table-scroll"', '<div class="plain"', 1)
    page = page.replace('href="#sec-studies--nsynth"', 'href="#sec-nowhere"', 1)
    index.write_text(page, encoding="utf-8")
    (broken / "studies" / "nsynth" / "small.png").unlink()
    (broken / "studies" / "nsynth" / "tone.wav").unlink()
    found = problems(browser_check(broken, PHONE))
    text = "\n".join(found)
    assert "the page grows from" in text
    assert "image studies/nsynth/small.png did not load" in text
    assert "audio studies/nsynth/tone.wav did not load" in text
    assert "anchor #sec-nowhere points nowhere" in text
    assert "table 'Table 1 (wide)' reaches past the screen" in text
    assert relative_links_exist(broken) == ["studies/nsynth/small.png", "studies/nsynth/tone.wav"]


@pytest.mark.pipeline
@needs_chromium
def test_the_tiny_runs_report_in_chromium(tiny_run, tmp_path):
    """The report the tiny DAG built, as a phone shows it."""
    report = tmp_path / "report"
    shutil.copytree(tiny_run / "results" / "report", report)
    assert relative_links_exist(report) == []
    check = browser_check(report, PHONE)
    assert check["images"] and check["audio"] and check["anchors"]
    assert problems(check) == []
