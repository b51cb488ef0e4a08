"""dcgan.studio.server and views over HTTP: what the page is sent equals what the CLI writes, and a request
can neither read outside the folder of runs nor write into a run beyond `dcgan inspect`'s files."""

import http.client
import io
import json
import shutil
import threading
import urllib.error
import urllib.request
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from dcgan.core.files import lock_run
from dcgan.studio.server import make_server, url_of
from helpers import run_sample, sample_npz


@pytest.fixture(scope="module")
def studio(studio_folder):
    server, app = make_server(studio_folder, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield SimpleNamespace(url=url_of(server), app=app, root=studio_folder, port=server.server_address[1])
    server.shutdown()
    server.server_close()
    app.anatomies.close()


def get(studio, path, headers=None):
    """(status, headers, body) of a GET."""
    request = urllib.request.Request(studio.url.rstrip("/") + path, headers=headers or {})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def error_of(studio, path, **kw) -> tuple[int, str]:
    status, _, body = get(studio, path, **kw)
    return status, json.loads(body)["error"]


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def files_of(folder):
    """Each file's modification time; the lock file, which any command that writes into a run rewrites, aside."""
    return {p.relative_to(folder): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file() and p.name != ".lock"}


def test_the_page_and_the_run_list(studio):
    status, headers, body = get(studio, "/")
    assert status == 200 and b"dcgan studio" in body and headers["Content-Type"].startswith("text/html")
    assert get(studio, "/studio.js")[0] == 200
    runs = json.loads(get(studio, "/api/runs")[2])
    ids = {r["id"] for r in runs["runs"]}
    assert {"tiny", "tiny-conditional", "compare-modes/transpose-seed0", "compare-modes/subpixel-seed0"} <= ids
    assert runs["comparisons"] == [{"id": "compare-modes", "runs": ["compare-modes/subpixel-seed0", "compare-modes/transpose-seed0"]}]
    modes = {r["id"]: r for r in runs["runs"]}
    assert modes["compare-modes/transpose-seed0"]["best"]["what"] in ("comparison", "best checkpoint")


def test_a_run_with_its_config_curves_and_newest_grid(studio):
    run = json.loads(get(studio, "/api/run?run=tiny")[2])
    assert run["config"] == (studio.root / "tiny" / "config.yaml").read_text()
    assert [p[0] for p in run["curves"]["losses"]["d_loss"]] == [2, 4, 6] and run["grid"] == "step_0000006.png"


@pytest.mark.parametrize("args", [(), ("--seeds", "5,1-3", "--truncation", "0.5"), ("--step", "3", "--no-ema")])
def test_the_grid_is_byte_for_byte_dcgan_samples(studio, tmp_path, args):
    out = tmp_path / "grid.png"
    assert run_sample(studio.root / "tiny", "--out", out, *args) == 0
    opts = dict(zip(args[::2], args[1::2]))
    q = "&".join([f"seeds={opts.get('--seeds', '')}", f"truncation={opts.get('--truncation', '')}",
                  f"step={opts.get('--step', '')}", "copy=raw" if "--no-ema" in args else "copy="])
    status, headers, body = get(studio, f"/api/grid.png?run=tiny&{q}")
    assert status == 200 and body == out.read_bytes()
    about = json.loads(headers["X-Dcgan"])
    assert about["step"] == int(opts.get("--step", 6)) and ("raw" in about["generator"]) == ("--no-ema" in args)


def test_a_conditional_grid_and_its_npz_are_the_commands(studio, tmp_path):
    out = tmp_path / "grid.png"
    run = studio.root / "tiny-conditional"
    assert run_sample(run, "--out", out, "--seeds", "0-3", "--class", "Trouser,0") == 0
    status, _, body = get(studio, "/api/grid.png?run=tiny-conditional&seeds=0-3&classes=Trouser,0")
    assert status == 200 and body == out.read_bytes()
    status, headers, body = get(studio, "/api/grid.npz?run=tiny-conditional&seeds=0-3&classes=Trouser,0")
    assert status == 200 and headers["Content-Disposition"] == 'attachment; filename="samples.npz"'
    served, written = dict(np.load(io.BytesIO(body))), sample_npz(run, tmp_path, "--seeds", "0-3", "--class", "Trouser,0")
    assert served.keys() == written.keys() and all(np.array_equal(served[k], written[k]) for k in served)


def test_a_walk_is_the_handles_frames_in_one_row(studio):
    from dcgan.tools.handle import load_handle

    status, headers, body = get(studio, "/api/walk.png?run=tiny&seeds=2,9&frames=4")
    assert status == 200 and json.loads(headers["X-Dcgan"])["frames"] == 5
    frames = load_handle(studio.root / "tiny").walk((2, 9), frames=4)
    assert np.array_equal(pixels(body), np.concatenate(list(frames), axis=1)[..., 0])


def test_a_class_walk_runs_from_one_class_to_the_other_at_one_latent(studio):
    from dcgan.tools.handle import load_handle

    status, _, body = get(studio, "/api/walk.png?run=tiny-conditional&seeds=4&classes=0,1&frames=3")
    assert status == 200
    strip = pixels(body)
    size = strip.shape[0]
    first, last = strip[:, :size], strip[:, -size:]
    handle = load_handle(studio.root / "tiny-conditional")
    assert np.array_equal(first, handle.sample(seeds=[4], classes=0)[0, ..., 0])
    assert np.array_equal(last, handle.sample(seeds=[4], classes=1)[0, ..., 0])
    assert not np.array_equal(strip[:, size : 2 * size], first)  # a frame between is neither end
    again = handle.sample(seeds=[4], classes=0)  # the embeddings were put back
    assert np.array_equal(again[0, ..., 0], first)


def test_inspect_writes_what_the_command_writes_and_nothing_else(studio):
    run = studio.root / "compare-modes" / "transpose-seed0"
    shutil.rmtree(run / "inspect", ignore_errors=True)  # the browser tests may have inspected the shared folder's run
    before = files_of(run)
    report = json.loads(get(studio, "/api/inspect?run=compare-modes/transpose-seed0")[2])
    assert report["generator"].startswith("ckpt-2 (") and "block0" in report["table"]
    status, _, figure = get(studio, "/api/inspect.png?run=compare-modes/transpose-seed0")
    assert status == 200 and figure == (run / "inspect" / "inspect.png").read_bytes()
    added = set(files_of(run)) - set(before)
    assert {str(p) for p in added} == {"inspect/inspect.json", "inspect/inspect.png"}
    assert all(files_of(run)[p] == t for p, t in before.items())  # nothing else touched


def test_inspecting_a_run_that_is_training_leaves_the_run_alone(studio):
    run = studio.root / "compare-modes" / "subpixel-seed0"
    before = files_of(run)
    with lock_run(run, "dcgan train"):
        status, _, body = get(studio, "/api/inspect?run=compare-modes/subpixel-seed0")
        assert status == 200 and "block0" in json.loads(body)["table"]
    assert files_of(run) == before and not (run / "inspect").exists()


def test_a_comparison_has_each_modes_scores_and_spectrum(studio):
    data = json.loads(get(studio, "/api/comparison?id=compare-modes")[2])
    assert {r["mode"] for r in data["runs"]} == {"transpose", "subpixel"}
    assert all(isinstance(r["scores"]["fid"], float) for r in data["runs"])
    spectrum = json.loads(get(studio, "/api/spectrum?run=compare-modes/transpose-seed0")[2])
    assert spectrum["from"] == "comparison" and len(spectrum["generated"]) == len(spectrum["real"]) > 1
    drawn = json.loads(get(studio, "/api/spectrum?run=tiny")[2])
    assert drawn["from"] == "256 samples" and drawn["real"] is None


@pytest.mark.parametrize("path", [
    "/api/grid.png?run=../tiny", "/api/grid.png?run=%2e%2e%2f%2e%2e%2fetc", "/api/grid.png?run=/etc",
    "/api/run?run=tiny/..", "/api/picture?run=tiny&name=../config.yaml", "/api/picture?run=tiny&name=%2fetc%2fpasswd",
    "/api/comparison?id=..", "/../../etc/passwd", "/page/index.html", "/api/picture?run=..%2f..&name=losses"])
def test_a_path_outside_the_runs_is_refused(studio, path):
    status, message = error_of(studio, path)
    assert status == 404 and "\n" not in message


def test_a_raw_traversal_request_line_is_refused(studio):
    conn = http.client.HTTPConnection("127.0.0.1", studio.port)
    conn.request("GET", "/../../../../etc/passwd")
    response = conn.getresponse()
    assert response.status == 404 and b"root:" not in response.read()


def test_another_host_name_and_a_write_are_refused(studio):
    assert error_of(studio, "/api/runs", headers={"Host": "attacker.example:80"})[0] == 403
    request = urllib.request.Request(studio.url + "api/runs", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(request)
    assert e.value.code == 405


@pytest.mark.parametrize("query, message", [
    ("run=tiny&truncation=abc", "truncation='abc': not a number"), ("run=tiny&step=9", "no checkpoint at step 9"),
    ("run=tiny&copy=best", "copy='best'"), ("run=tiny&classes=0", "unconditional"), ("seeds=1", "missing parameter 'run'"),
    ("run=tiny&seeds=0-5000", "at most"), ("run=tiny-conditional&classes=Spaceship", "Spaceship")])
def test_a_bad_request_is_one_line_naming_what_is_wrong(studio, query, message):
    status, error = error_of(studio, f"/api/grid.png?{query}")
    assert status in (400, 404) and message in error and "\n" not in error


def test_a_new_checkpoint_is_seen_without_a_restart(studio):
    run = studio.root / "tiny"
    ckpt = run / "checkpoints"
    for f in ckpt.glob("ckpt-6.*"):
        shutil.copy(f, ckpt / f.name.replace("ckpt-6", "ckpt-9"))
    try:
        status, headers, _ = get(studio, "/api/grid.png?run=tiny&seeds=0-3&step=9")
        assert status == 200 and json.loads(headers["X-Dcgan"])["step"] == 9
        runs = {r["id"]: r for r in json.loads(get(studio, "/api/runs")[2])["runs"]}
        assert runs["tiny"]["steps"] == [3, 6, 9]
    finally:
        for f in ckpt.glob("ckpt-9.*"):
            f.unlink()


def _studio_process(folder):
    """`dcgan studio FOLDER` in a process of its own, its Python stacks dumped if it is aborted."""
    import os
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-m", "dcgan", "studio", str(folder), "--port", "0"], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ, PYTHONFAULTHANDLER="1"))


def _stopped(proc) -> str:
    """Ctrl-C; its stderr once it exits. One that hangs is aborted and fails the test with its threads' stacks."""
    import signal
    import subprocess

    proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(timeout=60)[1]
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        pytest.fail("dcgan studio did not stop within 60 s of Ctrl-C; its stacks:\n" + proc.communicate()[1][-6000:])


def test_the_command_serves_the_folder_and_stops_on_ctrl_c(studio_folder):
    proc = _studio_process(studio_folder)
    try:
        line = proc.stdout.readline()
        assert line.startswith("dcgan studio: http://127.0.0.1:") and "runs under" in line
        url = line.split()[2]
        with urllib.request.urlopen(url + "api/runs") as response:
            assert {"tiny", "tiny-conditional"} <= {r["id"] for r in json.loads(response.read())["runs"]}
        with urllib.request.urlopen(url + "api/grid.png?run=tiny&seeds=0-3") as response:
            assert response.headers["Content-Type"] == "image/png"
    finally:
        err = _stopped(proc)
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "dcgan studio: interrupted"


def test_ctrl_c_while_tensorflow_is_still_loading_stops_it_too(studio_folder):
    """The warm-up (TensorFlow's import, the newest generator) runs beside the main thread, which only waits: an
    interrupt at once lands there, not inside the import, and the process still exits, saying so."""
    proc = _studio_process(studio_folder)
    try:
        assert proc.stdout.readline().startswith("dcgan studio: http://127.0.0.1:")
    finally:
        err = _stopped(proc)
    assert proc.returncode == 130 and err.strip().splitlines() == ["dcgan studio: interrupted"]


def test_a_missing_folder_or_a_taken_port_is_one_line(tmp_path, capsys, studio):
    from helpers import cli_error

    assert "no such folder of runs" in cli_error(capsys, "studio", str(tmp_path / "none"))
    assert f"cannot listen on 127.0.0.1:{studio.port}" in cli_error(capsys, "studio", str(studio.root), "--port", str(studio.port))


def test_the_best_checkpoint_is_drawn_and_inspected_as_its_path_would_be(studio, tmp_path):
    run = studio.root / "compare-modes" / "transpose-seed0"
    summary = json.loads(get(studio, "/api/run?run=compare-modes/transpose-seed0")[2])
    assert summary["best_checkpoint"] == 2
    out = tmp_path / "best.png"
    assert run_sample(run / "checkpoints" / "best" / "ckpt-2", "--seeds", "0-5", "--out", out) == 0
    status, headers, body = get(studio, "/api/grid.png?run=compare-modes/transpose-seed0&seeds=0-5&step=best")
    assert status == 200 and body == out.read_bytes() and json.loads(headers["X-Dcgan"])["step"] == 2
    report = json.loads(get(studio, "/api/inspect?run=compare-modes/transpose-seed0&step=best")[2])
    assert report["generator"].startswith("ckpt-2 (")
    status, message = error_of(studio, "/api/grid.png?run=tiny&step=best")
    assert status == 400 and "no best checkpoint" in message
