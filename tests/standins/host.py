"""A video host on 127.0.0.1: files with HTTP range support, faults, and a log of every request.

Faults are per path (a status such as 404/410/429 with Retry-After, a delay, a body cut short
behind a full Content-Length, an HTML page in place of the video, a body that never ends, a
huge announced size, a drip of one byte at a time) or random: a share of all
requests answered 500, 503 or 429 from a seeded generator. The server runs in a thread until
``stop()`` (the fixtures use it as a context manager); each connection times out after 10 s.
"""

from __future__ import annotations

import mimetypes
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

CHUNK = 16 * 1024
HTML_PAGE = b"<!doctype html><html><body><h1>Please sign in</h1></body></html>"


@dataclass
class Fault:
    """What the next requests to one path get instead of a normal answer."""

    status: int = 0  # answer this status (0: serve the file)
    retry_after: str | None = None  # Retry-After header sent with the status
    times: int = -1  # how many requests it applies to; -1: every request
    after: int = 0  # requests answered normally before it starts
    truncate: float = 0.0  # send this share of the body, then drop the connection
    html: bool = False  # an HTML page, status 200, in place of the file
    delay_s: float = 0.0  # wait before answering
    endless: bool = False  # a video body that never ends (no Content-Length)
    announce_bytes: int = 0  # announce this Content-Length, then send an endless body
    drip_s: float = 0.0  # send the body one byte per this many seconds


@dataclass(frozen=True)
class Hit:
    """One request as the server saw it."""

    time: float
    method: str
    path: str
    params: tuple[tuple[str, str], ...]
    status: int
    range: str | None
    cookie: str | None


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes = b""


class VideoHost:
    """Serves `files` (path -> bytes) and `redirects` (path -> path) with faults."""

    def __init__(
        self,
        *,
        failure_rate: float = 0.0,
        retry_after: str = "0",
        seed: int = 0,
        chunk_delay_s: float = 0.0,
    ) -> None:
        self.files: dict[str, bytes] = {}
        self.redirects: dict[str, str] = {}
        self.faults: dict[str, Fault] = {}
        self.failure_rate = failure_rate
        self.retry_after = retry_after
        self.chunk_delay_s = chunk_delay_s
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._hits: list[Hit] = []
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.host = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,))

    def __enter__(self) -> VideoHost:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def hits(self, path: str | None = None, since: float = 0.0) -> list[Hit]:
        """Requests so far, to one path or all, from time `since` on."""
        with self._lock:
            return [h for h in self._hits if (path is None or h.path == path) and h.time >= since]

    def max_in_window(self, period_s: float, prefix: str = "") -> int:
        """The most requests to paths starting with `prefix` (all by default) that arrived in
        any window of `period_s` seconds."""
        return most_in_window([h.time for h in self.hits() if h.path.startswith(prefix)], period_s)

    # -- answering ---------------------------------------------------------------------------

    def answer_api(
        self, method: str, path: str, params: list[tuple[str, str]], handler: _Handler
    ) -> Answer | None:
        """Subclasses answer API paths here; None: not an API path."""
        return None

    def transient_answer(self, path: str) -> Answer:
        """The answer of an injected transient failure."""
        status = self._rng.choice((500, 503, 429))
        headers = {"Retry-After": self.retry_after} if status == 429 else {}
        return Answer(status, headers, b"try again later")

    def _handle(self, handler: _Handler, method: str) -> None:
        arrived = time.time()
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        params = parse_qsl(split.query) + parse_qsl(body.decode("utf-8", "replace"))
        fault = self._take_fault(split.path)
        if fault is not None and fault.delay_s:
            time.sleep(fault.delay_s)
        headers = handler.headers

        def log_hit(status: int) -> None:
            hit = Hit(
                arrived,
                method,
                split.path,
                tuple(params),
                status,
                headers["Range"],
                headers["Cookie"],
            )
            with self._lock:
                self._hits.append(hit)

        handler.log_hit = log_hit  # called with the status line, before any of the answer leaves
        self._answer(handler, method, split.path, params, fault)

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            fault = self.faults.get(path)
            if fault is None or fault.times == 0:
                return None
            if fault.after > 0:
                fault.after -= 1
                return None
            if fault.times > 0:
                fault.times -= 1
            return fault

    def _answer(
        self,
        handler: _Handler,
        method: str,
        path: str,
        params: list[tuple[str, str]],
        fault: Fault | None,
    ) -> int:
        with self._lock:
            injected = self._rng.random() < self.failure_rate
        if fault is not None and fault.status:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return _send(handler, Answer(fault.status, headers, b"fault"))
        if injected:
            return _send(handler, self.transient_answer(path))
        if path in self.redirects:
            return _send(handler, Answer(302, {"Location": self.url(self.redirects[path])}))
        answer = self.answer_api(method, path, params, handler)
        if answer is not None:
            return _send(handler, answer)
        if fault is not None and fault.html:
            return _send(handler, Answer(200, {"Content-Type": "text/html"}, HTML_PAGE))
        if path not in self.files:
            return _send(handler, Answer(404, {}, b"not found"))
        if fault is not None and (fault.endless or fault.announce_bytes or fault.drip_s):
            return _send_stream(handler, fault)
        share = fault.truncate if fault is not None else 0.0
        return self._send_file(handler, path, share)

    def _send_file(self, handler: _Handler, path: str, truncate: float) -> int:
        data = self.files[path]
        start, end = 0, len(data) - 1
        kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
        status, headers = 200, {"Content-Type": kind, "Accept-Ranges": "bytes"}
        wanted = handler.headers["Range"]
        if wanted and wanted.startswith("bytes="):
            first, _, last = wanted[6:].partition("-")
            start = int(first or 0)
            end = min(int(last), end) if last else end
            if start > end:
                headers["Content-Range"] = f"bytes */{len(data)}"
                return _send(handler, Answer(416, headers))
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        body = data[start : end + 1]
        handler.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(body))}.items():
            handler.send_header(key, value)
        handler.end_headers()
        if truncate:
            body = body[: int(len(body) * truncate)]
            handler.close_connection = True
        try:
            for offset in range(0, len(body), CHUNK):
                handler.wfile.write(body[offset : offset + CHUNK])
                if self.chunk_delay_s:
                    time.sleep(self.chunk_delay_s)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True
        return status


def _send_stream(handler: BaseHTTPRequestHandler, fault: Fault) -> int:
    """An MP4-typed body sent until the client hangs up (see the stream faults of Fault)."""
    handler.send_response(200)
    handler.send_header("Content-Type", "video/mp4")
    handler.send_header("Connection", "close")
    if fault.announce_bytes:
        handler.send_header("Content-Length", str(fault.announce_bytes))
    handler.end_headers()
    handler.close_connection = True
    block = b"\0" if fault.drip_s else bytes(CHUNK)
    try:
        while True:
            handler.wfile.write(block)
            handler.wfile.flush()
            time.sleep(fault.drip_s)
    except OSError:  # the client hung up
        return 200


def most_in_window(times: list[float], period_s: float) -> int:
    """The most of `times` (seconds) that fall in any window of `period_s` seconds."""
    times, most, first = sorted(times), 0, 0
    for last, moment in enumerate(times):
        while moment - times[first] >= period_s:
            first += 1
        most = max(most, last - first + 1)
    return most


def _send(handler: BaseHTTPRequestHandler, answer: Answer) -> int:
    handler.send_response(answer.status)
    for key, value in {**answer.headers, "Content-Length": str(len(answer.body))}.items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(answer.body)
    return answer.status


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hangs up early (a killed run, a cut download) is expected


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real hosts
    disable_nagle_algorithm = True  # headers and body go out at once, no delayed-ACK stall
    timeout = 10
    log_hit: Callable[[int], None] | None = None

    def send_response(self, code: int, message: str | None = None) -> None:
        """Logs the request first, so a client never sees an answer the log does not hold yet."""
        if self.log_hit is not None:
            self.log_hit(code)
            self.log_hit = None
        super().send_response(code, message)

    def do_GET(self) -> None:
        self.server.host._handle(self, "GET")  # type: ignore[attr-defined]

    def do_POST(self) -> None:
        self.server.host._handle(self, "POST")  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base signature
        pass
