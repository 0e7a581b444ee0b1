"""A local Label Studio server for the annotation round trip, run from its own environment.

Label Studio pins versions that clash with ours, so it is installed in a virtual environment
of its own (``tld annotate server install``) and runs as a separate process
(``tld annotate server start``), headless, on 127.0.0.1, with its outside calls (version
check, analytics, error reporting) switched off. Its data folder (owner-only, mode 0700: the
database holds the API token) holds:

    label_studio.sqlite3   Label Studio's database (projects, tasks, annotations)
    api-token              the admin's API token (mode 0600; read by push/pull, never printed)
    admin-password         the admin's password for the web UI (mode 0600)
    server.json            pid, URL and files root of the running server
    server.log             the server's output

The first start of a data folder runs Label Studio's database migrations (about a minute).
Label Studio serves the clip previews from the files root (its local-files storage); the
build folders to annotate must lie under it.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from timelapse_d.errors import ConfigError
from timelapse_d.runs import read_json, write_json

LABEL_STUDIO_VERSION = "1.23.2"
ADMIN_EMAIL = "admin@timelapse-d.local"
TOKEN_FILE = "api-token"
PASSWORD_FILE = "admin-password"
STATE_FILE = "server.json"
LOG_FILE = "server.log"
DEFAULT_PORT = 8080
# Label Studio settings that keep it from calling out (PyPI version check, analytics, Sentry).
OFFLINE = {
    "LATEST_VERSION_CHECK": "false",
    "COLLECT_ANALYTICS": "false",
    "SENTRY_DSN": "",
    "FRONTEND_SENTRY_DSN": "",
}


class AnnotationServerError(ConfigError):
    """Label Studio is missing, unreachable or refused a request; the message says what to do."""


def default_home() -> Path:
    """Where the server's environment and data live: $TLD_LABEL_STUDIO_HOME, else
    ~/.local/share/timelapse-d/label-studio."""
    home = os.environ.get("TLD_LABEL_STUDIO_HOME", "~/.local/share/timelapse-d/label-studio")
    return Path(home).expanduser()


@dataclass(frozen=True)
class ServerInfo:
    """A running server started by `start`."""

    url: str
    pid: int
    files_root: str
    data_dir: str

    @property
    def token_file(self) -> Path:
        return Path(self.data_dir) / TOKEN_FILE

    @property
    def password_file(self) -> Path:
        return Path(self.data_dir) / PASSWORD_FILE


def executable(venv: Path) -> Path:
    """The `label-studio` command of `venv`, or an error naming the command that installs it."""
    path = venv / "bin" / "label-studio"
    if not path.exists():
        raise AnnotationServerError(
            f"Label Studio is not installed in {venv}: run `tld annotate server install "
            f"--venv {venv}`"
        )
    return path


def install(venv: Path, version: str = LABEL_STUDIO_VERSION) -> Path:
    """Create `venv` (if needed) and pip-install Label Studio `version` into it."""
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"label-studio=={version}"],
        check=True,
    )
    return executable(venv)


def start(
    data_dir: Path,
    venv: Path,
    files_root: Path,
    port: int = DEFAULT_PORT,
    timeout_s: float = 300.0,
) -> ServerInfo:
    """Start Label Studio on 127.0.0.1:`port` (0: a free port) with `data_dir`, or return the
    server already running there; waits until it answers its health check."""
    running_server = running(data_dir)
    if running_server is not None:
        return running_server
    command = executable(venv)
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    token = _secret(data_dir / TOKEN_FILE, 20)
    port = port or _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LABEL_STUDIO_")},
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LABEL_STUDIO_USERNAME": ADMIN_EMAIL,
        "LABEL_STUDIO_PASSWORD": _secret(data_dir / PASSWORD_FILE, 12),
        "LABEL_STUDIO_USER_TOKEN": token,
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(files_root.resolve()),
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        **OFFLINE,
    }
    args = ["start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port)]
    with (data_dir / LOG_FILE).open("ab") as log:
        process = subprocess.Popen(
            [str(command), *args, "--data-dir", str(data_dir)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    info = ServerInfo(url, process.pid, str(files_root.resolve()), str(data_dir))
    write_json(data_dir / STATE_FILE, asdict(info))
    deadline = time.monotonic() + timeout_s
    while not _healthy(url):
        if process.poll() is not None or time.monotonic() > deadline:
            _terminate(process.pid)
            (data_dir / STATE_FILE).unlink(missing_ok=True)
            raise AnnotationServerError(
                f"Label Studio did not come up at {url}; its log ({data_dir / LOG_FILE}) ends "
                f"with: {_tail(data_dir / LOG_FILE)}"
            )
        time.sleep(0.5)
    return info


def running(data_dir: Path) -> ServerInfo | None:
    """The server started with `data_dir`, if it is still up."""
    state = data_dir / STATE_FILE
    if not state.exists():
        return None
    info = ServerInfo(**read_json(state))
    return info if _alive(info.pid) and _healthy(info.url) else None


def stop(data_dir: Path, timeout_s: float = 30.0) -> bool:
    """Stop the server started with `data_dir` (by its recorded pid); False if none ran."""
    state = data_dir / STATE_FILE
    if not state.exists():
        return False
    info = ServerInfo(**read_json(state))
    stopped = _alive(info.pid)
    if stopped:
        _terminate(info.pid, timeout_s)
    state.unlink(missing_ok=True)
    return stopped


def read_token(path: Path) -> str:
    """An API token stored in a file (surrounding whitespace dropped)."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise AnnotationServerError(f"cannot read the API token file {path}: {exc}") from None
    if not token:
        raise AnnotationServerError(f"the API token file {path} is empty")
    return token


def _secret(path: Path, size: int) -> str:
    """A random secret kept in `path` (created once, owner-only)."""
    if not path.exists():
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_hex(size))
    return read_token(path)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _alive(pid: int) -> bool:
    """Whether `pid` runs Label Studio (a recycled pid running something else does not count)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True  # no /proc (macOS): trust the recorded pid
    return b"label-studio" in command or b"label_studio" in command


def _terminate(pid: int, timeout_s: float = 30.0) -> None:
    """SIGTERM the server's process group, SIGKILL it after `timeout_s`."""
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                finished, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # not our child: poll for its exit instead
                finished = 0 if _exists(pid) else pid
            if finished:
                return
            time.sleep(0.1)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"
