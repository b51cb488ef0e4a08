"""`dcgan studio` in a real headless Chromium (Debian's `chromium`, driven by Playwright): the picture the page
shows is `dcgan sample`'s, pixel for pixel; a walk plays; the upsampling view inspects; a path outside the runs
is refused. DCGAN_STUDIO_SHOTS=DIR keeps a screenshot of each view of the tiny runs there."""

import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dcgan.studio.server import make_server, url_of
from helpers import run_sample

CHROMIUM = os.environ.get("DCGAN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api", reason="Playwright is in the [test] extra: pip install -e .[test]")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: apt-get install chromium (scripts/setup.sh --test "
                                "installs it where apt exists), or point DCGAN_CHROMIUM at one")
SHOTS = os.environ.get("DCGAN_STUDIO_SHOTS")
WAIT_MS = 60_000  # the first draw of a run loads its generator, and an inspection builds the whole GAN


@pytest.fixture(scope="module")
def studio(studio_folder):
    server, app = make_server(studio_folder, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield url_of(server), studio_folder
    server.shutdown()
    server.server_close()
    app.anatomies.close()


@pytest.fixture(scope="module")
def page(studio):
    url, _ = studio
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        tab = browser.new_page(viewport={"width": 1400, "height": 950})
        errors = []
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        tab.goto(url)
        tab.wait_for_selector("#runs tbody tr[data-run]")
        tab.errors = errors
        yield tab
        browser.close()


def wait_until(page, predicate: str, arg=None, timeout: float = 10_000) -> None:
    """Poll a JavaScript predicate from here: Playwright's own wait_for_function evaluates its polling
    predicate with eval, which the studio's Content-Security-Policy (rightly) refuses."""
    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(predicate, arg):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {predicate} ({arg!r}); page error: {page.text_content('#error')!r}")
        page.wait_for_timeout(50)


def shown_pixels(page, selector: str) -> np.ndarray:
    """The pixels of a picture as the page decoded it (drawn at its natural size onto a canvas)."""
    rgba = page.evaluate("""(sel) => {
        const img = document.querySelector(sel), c = document.createElement('canvas');
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
        return [c.width, c.height, Array.from(ctx.getImageData(0, 0, c.width, c.height).data)];
    }""", selector)
    w, h, data = rgba
    return np.asarray(data, np.uint8).reshape(h, w, 4)


def canvas_pixels(page, selector: str) -> np.ndarray:
    w, h, data = page.evaluate("""(sel) => { const c = document.querySelector(sel);
        return [c.width, c.height, Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)]; }""", selector)
    return np.asarray(data, np.uint8).reshape(h, w, 4)


def shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"studio_{name}.png"), full_page=True)


def pick(page, run: str, tab: str) -> None:
    page.click(f"#runs tbody tr[data-run='{run}']")
    wait_until(page, "(id) => document.getElementById('run-title').textContent === id", arg=run)
    page.click(f"#tabs button[data-tab={tab}]")


def test_the_run_view_lists_the_runs_and_plots_the_run(page):
    rows = page.locator("#runs tbody tr").evaluate_all("rows => rows.map(r => r.dataset.run)")
    assert {"tiny", "tiny-conditional", "compare-modes/transpose-seed0"} <= set(rows)
    pick(page, "tiny", "run")
    wait_until(page, "() => document.querySelector('#loss-chart polyline') !== null")
    assert "mnist" in page.text_content("#run-meta") and "finished" in page.text_content("#run-meta")
    assert "model:" in page.text_content("#config")
    shot(page, "run")


def test_the_grid_shown_is_dcgan_samples_pixel_for_pixel(page, studio, tmp_path):
    _, root = studio
    pick(page, "tiny-conditional", "sample")
    page.fill("#seeds", "3-7")
    page.uncheck("#classes input[value='0']")  # classes 1 (Trouser) and 2 ... are left: pick Trouser alone
    for box in page.locator("#classes input").all()[2:]:
        box.uncheck()
    wait_until(page, "(q) => (document.getElementById('grid').dataset.query || '').includes(q)",
                           arg="seeds=3-7&classes=1", timeout=WAIT_MS)
    out = tmp_path / "grid.png"
    assert run_sample(root / "tiny-conditional", "--seeds", "3-7", "--class", "Trouser", "--out", out) == 0
    written = np.asarray(Image.open(out))
    shown = shown_pixels(page, "#grid")
    assert shown.shape[:2] == written.shape[:2]
    assert np.array_equal(shown[..., 0], written) and np.array_equal(shown[..., 1], written) and (shown[..., 3] == 255).all()
    # the truncation slider redraws, and the download link is the same picture as a file
    page.fill("#truncation", "0.5")
    page.dispatch_event("#truncation", "input")
    wait_until(page, "() => (document.getElementById('grid').dataset.query || '').includes('truncation=0.5')", timeout=WAIT_MS)
    href = page.get_attribute("#download-png", "href")
    body = page.evaluate("async (u) => Array.from(new Uint8Array(await (await fetch(u)).arrayBuffer()))", href)
    assert run_sample(root / "tiny-conditional", "--seeds", "3-7", "--class", "Trouser", "--truncation", "0.5", "--out", out) == 0
    assert bytes(body) == out.read_bytes()
    shot(page, "sample")


def test_a_walk_plays_its_frames(page, studio):
    from dcgan.tools.handle import load_handle

    _, root = studio
    pick(page, "tiny", "walk")
    page.fill("#walk-a", "2")
    page.fill("#walk-b", "9")
    page.fill("#walk-frames", "4")
    page.dispatch_event("#walk-frames", "change")
    wait_until(page, "() => (document.getElementById('walk-canvas').dataset.query || '').includes('frames=4')", timeout=WAIT_MS)
    seen = set()
    for _ in range(40):  # playing: the frame moves on by itself
        seen.add(page.get_attribute("#walk-canvas", "data-frame"))
        page.wait_for_timeout(60)
    assert len(seen) >= 3
    page.click("#walk-play")  # pause, then step to frame 3 with the slider
    page.fill("#walk-frame", "3")
    page.dispatch_event("#walk-frame", "input")
    assert page.get_attribute("#walk-canvas", "data-frame") == "3"
    truncation = float(page.input_value("#truncation"))  # the shared control, as the sample view left it
    frames = load_handle(root / "tiny").walk((2, 9), frames=4, truncation=truncation)[..., 0]
    assert np.array_equal(canvas_pixels(page, "#walk-canvas")[..., 0], frames[3])
    shot(page, "walk")


def test_the_upsampling_view_inspects_and_lines_up_the_modes(page):
    pick(page, "compare-modes/transpose-seed0", "upsampling")
    wait_until(page, "() => document.querySelectorAll('#mode-panels img[data-query]').length === 2", timeout=WAIT_MS)
    assert page.locator("#spectrum-chart polyline").count() == 3  # each mode's spectrum and the real one
    page.click("#inspect-run")
    page.wait_for_selector("#inspect-figure[data-query]", timeout=WAIT_MS)
    assert "block0" in page.text_content("#inspect-table")
    assert page.evaluate("() => document.getElementById('inspect-figure').naturalWidth") > 200
    shot(page, "upsampling")


def test_two_runs_side_by_side(page):
    pick(page, "compare-modes/transpose-seed0", "compare")
    page.select_option("#compare-with", "compare-modes/subpixel-seed0")
    wait_until(page, "() => document.getElementById('compare-b').dataset.query?.includes('subpixel')", timeout=WAIT_MS)
    wait_until(page, "() => document.getElementById('compare-scores').textContent.includes('fid')", timeout=WAIT_MS)
    assert page.locator("#compare-scores th").all_text_contents() == ["score", "compare-modes/transpose-seed0",
                                                                     "compare-modes/subpixel-seed0"]
    shot(page, "compare")


def test_no_view_had_a_script_error_or_a_refused_resource(page):
    for tab in ("run", "sample", "walk", "upsampling", "compare"):
        page.click(f"#tabs button[data-tab={tab}]")
        page.wait_for_timeout(300)
    assert page.errors == []


def test_a_path_outside_the_runs_is_refused_to_the_page(page):
    for path in ("/api/picture?run=../..&name=losses", "/api/run?run=..%2F..%2Fetc", "/..%2F..%2Fetc/passwd"):
        status, text = page.evaluate("async (u) => { const r = await fetch(u); return [r.status, await r.text()]; }", path)
        assert status == 404 and "root:" not in text
