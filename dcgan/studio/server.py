"""`dcgan studio`: a local web app over a folder of runs, served by the standard library's HTTP server.

The page (dcgan/studio/page/) asks for JSON and pictures by GET; every answer is computed here from a run's
files and its generators (dcgan.studio.views). It only reads: the one thing it writes into a run is what
`dcgan inspect` writes (RUN/inspect/), when asked to inspect. It binds 127.0.0.1 unless told otherwise, and
then answers only requests addressed to that name (a page elsewhere cannot reach it by DNS rebinding).
"""

from __future__ import annotations

import json
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from dcgan.core.errors import DcganError, first_line
from dcgan.core.files import read_bytes
from dcgan.core.yamlio import MAX_FILE_BYTES
from dcgan.studio import views
from dcgan.studio.runs import NotFound, RunsFolder, curves, newest_grid
from dcgan.training.rundir import CONFIG_FILE

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 7860
PAGE = {"/": ("index.html", "text/html; charset=utf-8"), "/studio.js": ("studio.js", "text/javascript; charset=utf-8"),
        "/studio.css": ("studio.css", "text/css; charset=utf-8")}
LOOPBACK = ("127.0.0.1", "localhost", "::1")
COPIES = {"": None, "chosen": None, "ema": True, "raw": False}
MAX_QUERY = 4096
STOP_WAIT_S = 20  # on Ctrl-C, the longest wait for a drawing in flight (each of two locks)


class BadRequest(DcganError):
    pass


class Studio:
    """What every request shares: the folder, its loaded generators, the anatomies computed."""

    def __init__(self, root):
        self.folder = RunsFolder(root)
        self.gens = views.Generators(self.folder)
        self.anatomies = views.Anatomies()

    # each answer: (status, media type, body, extra headers)
    def runs(self, q):
        return json_answer(self.folder.summary())

    def run(self, q):
        run = self.folder.run(q.text("run"))
        config = read_bytes(run.path / CONFIG_FILE, MAX_FILE_BYTES, "a run's config").decode(errors="replace")
        grid = newest_grid(run)
        return json_answer({**run.summary(), "config": config, "curves": curves(run), "grid": grid.name if grid else None})

    def picture(self, q):
        body, media = self.folder.picture(q.text("run"), q.text("name"))
        return HTTPStatus.OK, media, body, {}

    def grid(self, q, npz: bool = False):
        body, about = views.grid(self.gens, q.text("run"), q.text("seeds", "") or None, q.text("classes", "") or None,
                                 q.number("truncation", 1.0), q.step(), q.copy(), as_npz=npz)
        media, name = ("application/octet-stream", "samples.npz") if npz else ("image/png", "sample_grid.png")
        headers = {"X-Dcgan": json.dumps(about)}
        if q.text("download", "") or npz:
            headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return HTTPStatus.OK, media, body, headers

    def npz(self, q):
        return self.grid(q, npz=True)

    def walk(self, q):
        png, about = views.walk(self.gens, q.text("run"), q.text("seeds", "0,1"), q.text("classes", "") or None,
                                int(q.number("frames", 16)), q.number("truncation", 1.0), q.step(), q.copy())
        return HTTPStatus.OK, "image/png", png, {"X-Dcgan": json.dumps(about)}

    def inspect(self, q):
        from dcgan.tools.anatomy import format_table

        run = self.folder.run(q.text("run"))
        report, _ = self.anatomies.get(run, q.step(), q.copy())
        return json_answer({key: report.get(key) for key in ("source", "generator", "n", "seconds")} |
                           {"table": format_table(report)})

    def inspect_png(self, q):
        run = self.folder.run(q.text("run"))
        _, figure = self.anatomies.get(run, q.step(), q.copy())
        return HTTPStatus.OK, "image/png", figure, {}

    def comparison(self, q):
        runs = self.folder.comparison(q.text("id"))
        return json_answer({"id": q.text("id"), "runs": [{**r.summary(), "scores": views.scores(r)} for r in runs]})

    def spectrum(self, q):
        return json_answer(views.spectrum(self.gens, self.folder.run(q.text("run"))))

    def scores(self, q):
        return json_answer(views.scores(self.folder.run(q.text("run"))))

    def routes(self) -> dict:
        return {"/api/runs": self.runs, "/api/run": self.run, "/api/picture": self.picture, "/api/grid.png": self.grid,
                "/api/grid.npz": self.npz, "/api/walk.png": self.walk, "/api/inspect": self.inspect,
                "/api/inspect.png": self.inspect_png, "/api/comparison": self.comparison,
                "/api/spectrum": self.spectrum, "/api/scores": self.scores}


class Query:
    """A request's parameters, each read once and checked, with the parameter named in any error."""

    def __init__(self, text: str):
        if len(text) > MAX_QUERY:
            raise BadRequest(f"query of {len(text):,} characters; at most {MAX_QUERY:,}")
        self.values = parse_qs(text, keep_blank_values=True, max_num_fields=32)

    def text(self, name: str, default: str | None = None) -> str:
        if name not in self.values:
            if default is None:
                raise BadRequest(f"missing parameter {name!r}")
            return default
        return self.values[name][-1]

    def number(self, name: str, default: float) -> float:
        text = self.text(name, "")
        try:
            return float(text) if text else default
        except ValueError:
            raise BadRequest(f"{name}={text[:40]!r}: not a number") from None

    def step(self) -> int | None:
        text = self.text("step", "")
        if text in ("", "latest"):
            return None
        if text == "best":
            return text
        if not text.isdigit():
            raise BadRequest(f"step={text[:40]!r}: not a step number, latest or best")
        return int(text)

    def copy(self) -> bool | None:
        text = self.text("copy", "")
        if text not in COPIES:
            raise BadRequest(f"copy={text[:40]!r}: expected chosen, ema or raw")
        return COPIES[text]


def json_answer(value) -> tuple:
    return HTTPStatus.OK, "application/json", json.dumps(value, allow_nan=False, default=str).encode(), {}


def make_handler(studio: Studio, allowed_hosts: set[str] | None):
    routes = studio.routes()

    class Handler(BaseHTTPRequestHandler):
        server_version = "dcgan-studio"

        def do_GET(self):
            url = urlsplit(self.path)
            try:
                if allowed_hosts is not None and self.headers.get("Host", "") not in allowed_hosts:
                    raise PermissionError(f"host {self.headers.get('Host', '')[:80]!r} is not this studio's address")
                if url.path in PAGE:
                    name, media = PAGE[url.path]
                    answer = HTTPStatus.OK, media, resources.files("dcgan.studio").joinpath("page", name).read_bytes(), {}
                elif url.path == "/favicon.ico":
                    answer = HTTPStatus.NO_CONTENT, "image/x-icon", b"", {}
                elif url.path in routes:
                    answer = routes[url.path](Query(url.query))
                else:
                    raise NotFound(f"no such page: {url.path[:80]}")
            except PermissionError as e:
                answer = error(HTTPStatus.FORBIDDEN, str(e))
            except NotFound as e:
                answer = error(HTTPStatus.NOT_FOUND, str(e))
            except (DcganError, ValueError) as e:  # a request the run cannot answer: one line, as the CLI says it
                answer = error(HTTPStatus.BAD_REQUEST, first_line(e))
            except Exception as e:  # noqa: BLE001 - the page shows the line; the studio keeps serving
                answer = error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(e).__name__}: {first_line(e)}")
                print(f"dcgan studio: {url.path}: {type(e).__name__}: {first_line(e)}", file=sys.stderr)
            self.reply(*answer)

        def do_POST(self):
            self.reply(*error(HTTPStatus.METHOD_NOT_ALLOWED, "the studio only reads: GET"))

        do_PUT = do_DELETE = do_PATCH = do_POST

        def reply(self, status, media, body, headers):
            self.send_response(status)
            self.send_header("Content-Type", media)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self' blob: data:; frame-ancestors 'none'")
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):  # one line per request would bury the URL; errors print themselves
            pass

    return Handler


def error(status: HTTPStatus, message: str) -> tuple:
    return status, "application/json", json.dumps({"error": message}).encode(), {}


def make_server(root, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> tuple[ThreadingHTTPServer, Studio]:
    """The studio's server, bound (port 0: any free port) but not serving yet."""
    studio = Studio(root)
    try:
        server = ThreadingHTTPServer((host, port), None)
    except OSError as e:
        raise DcganError(f"cannot listen on {host}:{port}: {e.strerror or e} (choose another --port or --host)") from None
    port = server.server_address[1]
    allowed = {f"{name}:{port}" for name in (*LOOPBACK[:2], "[::1]")} if host in LOOPBACK else None
    server.RequestHandlerClass = make_handler(studio, allowed)
    server.daemon_threads = True
    return server, studio


def url_of(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


def warm_up(studio: Studio) -> None:
    """Import TensorFlow and load the newest run's generator while the page is already being served.

    Under the generators' lock, like every drawing, so that stopping can wait for it to finish.
    """
    from dcgan.core.tfimport import quiet_tensorflow

    with studio.gens.lock:
        quiet_tensorflow()
        runs = [r for r in studio.folder.scan()[0].values() if r.steps and not r.problem]
        if runs:
            newest = max(runs, key=lambda r: (r.path / "checkpoints").stat().st_mtime)
            try:
                studio.gens.get(newest.id)
            except DcganError:
                pass  # the page will say why when it asks


def serve(root="runs", host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> str:
    """`dcgan studio`: serve until Ctrl-C; returns the line printed when it stops."""
    server, studio = make_server(root, host, port)
    count = len(studio.folder.scan()[0])
    print(f"dcgan studio: {url_of(server)} ({count} run{'s' * (count != 1)} under {root}; Ctrl-C to stop)", flush=True)
    # The main thread only waits, so Ctrl-C lands there and never inside TensorFlow's import or a forward pass
    # (an interrupt in the middle of those could leave the process hanging at exit).
    thread = threading.Thread(target=server.serve_forever, name="studio", daemon=True)
    thread.start()
    threading.Thread(target=warm_up, args=(studio,), name="studio-warm-up", daemon=True).start()
    try:
        while thread.is_alive():
            thread.join(1.0)
    finally:
        server.shutdown()
        _finish_drawing(studio)
        server.server_close()
        studio.anatomies.close()
    return "dcgan studio: stopped"


def _finish_drawing(studio: Studio) -> None:
    """Wait (boundedly) for the TensorFlow work in flight, the warm-up, a grid or an inspection, and keep new work
    from starting: the interpreter then exits with no thread inside TensorFlow."""
    for lock in (studio.gens.lock, studio.anatomies.lock):
        lock.acquire(timeout=STOP_WAIT_S)


def studio_command(args) -> str:
    return serve(args.runs, args.host, args.port)
