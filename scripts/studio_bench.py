"""How fast `dcgan studio` is to start and to redraw, measured in a real headless Chromium.

    python scripts/studio_bench.py runs --run fashion_mnist-upsample [--redraws 20] [--shots docs/studio]

Prints: seconds from starting the command to its URL line, to the page listing the runs, and to the first
64-image grid of the run (which includes importing TensorFlow and loading the generator); then the time from
a truncation-slider change to the new grid being shown, over --redraws changes (median and worst), and the
server's own time for the same grid over HTTP. --shots DIR keeps a screenshot of each view (run, sample,
walk, upsampling, compare), taken of the runs named by --run, --conditional, --comparison-run and --beside.
Needs Playwright and Chromium (`bash scripts/setup.sh --test`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from dcgan.tools.report import cpu_name


VALUES = ("0.5", "0.75", "0.9", "0.6", "0.85", "0.7", "0.95", "0.55")  # truncations: each differs from the last


def wait_until(page, predicate: str, arg=None, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(predicate, arg):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {predicate}: {page.text_content('#error')!r}")
        page.wait_for_timeout(5)


def shown(img: str, text: str) -> str:
    return f"(document.getElementById('{img}').dataset.query || '').includes('{text}')"


def pick(page, run: str, tab: str) -> None:
    page.click(f"#runs tbody tr[data-run='{run}']")
    wait_until(page, "(id) => document.getElementById('run-title').textContent === id", run)
    page.click(f"#tabs button[data-tab={tab}]")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", help="the folder of runs")
    ap.add_argument("--run", required=True, help="the run whose grid is redrawn (its id: a path below the folder)")
    ap.add_argument("--redraws", type=int, default=20)
    ap.add_argument("--shots", help="keep a screenshot of each view in this folder")
    ap.add_argument("--conditional", help="a conditional run for the sample and walk screenshots")
    ap.add_argument("--comparison-run", help="a run of a comparison for the upsampling screenshot")
    ap.add_argument("--beside", help="the run shown beside --comparison-run in the compare screenshot")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("DCGAN_CHROMIUM") or shutil.which("chromium")
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "dcgan", "studio", args.runs, "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        t_url = time.perf_counter() - start
        url = line.split()[2]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True)
            t_browser = time.perf_counter()
            page = browser.new_page(viewport={"width": 1400, "height": 950})
            page.goto(url)
            wait_until(page, "() => document.querySelectorAll('#runs tbody tr[data-run]').length > 0")
            t_page = time.perf_counter() - start
            pick(page, args.run, "sample")
            wait_until(page, "() => " + shown("grid", "truncation=1&"))
            t_grid = time.perf_counter() - start
            redraws = []
            for i in range(args.redraws):
                value = VALUES[i % len(VALUES)]
                began = time.perf_counter()
                page.fill("#truncation", value)
                page.dispatch_event("#truncation", "input")
                wait_until(page, "() => " + shown("grid", f"truncation={value}&"))
                redraws.append(time.perf_counter() - began)
            server = []
            for _ in range(args.redraws):
                began = time.perf_counter()
                urllib.request.urlopen(f"{url}api/grid.png?run={args.run}&seeds=0-63&truncation=0.7").read()
                server.append(time.perf_counter() - began)
            if args.shots:
                take_shots(page, args)
            browser.close()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores; Chromium {chromium}")
    print(f"URL printed {t_url:.2f} s after the command; page listing the runs at {t_page:.2f} s "
          f"(browser start {t_browser - start - t_url:.2f} s of it); first 64-image grid shown at {t_grid:.2f} s")
    print(f"redraw after a slider change ({len(redraws)} changes, 64 images): median {1000 * statistics.median(redraws):.0f} ms, "
          f"worst {1000 * max(redraws):.0f} ms")
    print(f"the same grid from the server alone (HTTP, generate, PNG): median {1000 * statistics.median(server):.0f} ms")


def take_shots(page, args) -> None:
    folder = Path(args.shots)
    folder.mkdir(parents=True, exist_ok=True)

    def shot(name):
        page.wait_for_timeout(400)
        page.screenshot(path=str(folder / f"studio_{name}.png"))

    page.fill("#truncation", "1")
    page.dispatch_event("#truncation", "input")
    pick(page, args.run, "run")
    wait_until(page, "() => document.querySelector('#loss-chart polyline') !== null")
    shot("run")
    pick(page, args.conditional or args.run, "sample")
    if args.conditional:
        page.fill("#seeds", "0-9")
        page.dispatch_event("#seeds", "input")
        wait_until(page, "() => " + shown("grid", "seeds=0-9"))
    shot("sample")
    pick(page, args.conditional or args.run, "walk")
    if args.conditional:
        page.select_option("#walk-class-a", "5")
        page.select_option("#walk-class-b", "7")
    wait_until(page, "() => (document.getElementById('walk-canvas').dataset.query || '').length > 0")
    shot("walk")
    if args.comparison_run:
        pick(page, args.comparison_run, "upsampling")
        wait_until(page, "() => document.querySelectorAll('#mode-panels img[data-query]').length > 1")
        page.click("#inspect-run")
        page.wait_for_selector("#inspect-figure[data-query]", timeout=300_000)
        page.wait_for_timeout(400)
        page.screenshot(path=str(folder / "studio_upsampling.png"), full_page=True)
        pick(page, args.comparison_run, "compare")
        if args.beside:
            page.select_option("#compare-with", args.beside)
        wait_until(page, "() => (document.getElementById('compare-b').dataset.query || '').length > 0")
        shot("compare")


if __name__ == "__main__":
    main()
