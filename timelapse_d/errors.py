"""The errors of timelapse-d: one root, :class:`TldError`, and one class per kind of problem.

``tld`` prints any of them as one ``error:`` line and exits with the code of its kind
(:data:`timelapse_d.cli.errors.EXIT_CODES`):

- :class:`ConfigError`: the configuration or environment (a bad option or recipe value, a
  missing tool, a folder that is not a build, the lock held by another command);
- :class:`DataError`: the data given is damaged or not what it should be (a file that is not
  Parquet, a list with a bad row, an image that cannot be read);
- :class:`MediaError`: a video file that cannot be probed or decoded; it carries a stable
  ``reason`` code (recorded in manifests) and a message that names the file;
- :class:`AcquireError`: a remote call or download failed, with its class (:data:`ERROR_CLASSES`);
- :class:`EncodeError`: ffmpeg could not write a clip that matches its manifest row;
- :class:`HostError`: the machine failed (disk full, I/O error, a killed helper).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class TldError(Exception):
    """Any expected failure of timelapse-d; its message says what is wrong and what to do."""


class ConfigError(TldError):
    """A configuration or environment problem, reported at start with how to fix it."""


class DataError(TldError):
    """Input data that is damaged or not in the expected form; the message names the file."""


class HostError(TldError):
    """The machine failed (disk full, I/O error, a killed helper): stop, record nothing."""


class EncodeError(TldError):
    """ffmpeg could not produce a clip that matches its manifest row."""


REASONS = frozenset(
    {
        "missing_file",  # the path does not exist
        "empty_file",  # zero bytes
        "not_a_video",  # HTML/text/garbage/still image: not a video format at all
        "no_video_stream",  # a media file without video, e.g. audio only
        "unreadable",  # a video container or codec that cannot be opened or decoded at all
        "truncated",  # the file ends early: decoding stops part way (or before any frame)
    }
)


class MediaError(TldError):
    """A media file is unusable; ``reason`` is a stable code, ``message`` says why in words."""

    def __init__(self, path: Path | str, reason: str, detail: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown media error reason {reason!r}")
        self.path = Path(path)
        self.reason = reason
        self.detail = detail
        self.message = f"{self.path.name}: {detail}"
        super().__init__(self.message)

    def __reduce__(self) -> tuple[type[MediaError], tuple[Path, str, str]]:
        return type(self), (self.path, self.reason, self.detail)


class ProbeError(MediaError):
    """Probing found the file unusable."""


class DecodeError(MediaError):
    """Decoding failed; frames yielded before the error are still good."""


@dataclass(frozen=True)
class ErrorClass:
    """A class of acquisition failure and how retries treat it."""

    name: str
    permanent: bool  # a later run would fail the same way
    backoff: bool  # worth retrying within this run after a pause


ERROR_CLASSES = {
    c.name: c
    for c in (
        ErrorClass("removed", permanent=True, backoff=False),
        ErrorClass("private", permanent=True, backoff=False),
        ErrorClass("geo_blocked", permanent=True, backoff=False),
        ErrorClass("unsupported", permanent=True, backoff=False),
        ErrorClass("corrupt", permanent=True, backoff=False),
        ErrorClass("bot_check", permanent=False, backoff=False),
        ErrorClass("rate_limited", permanent=False, backoff=True),
        ErrorClass("network", permanent=False, backoff=True),
    )
}


class AcquireError(TldError):
    """An expected failure of one item, with its class and, for 429/503, the server's wait."""

    def __init__(self, error_class: str, message: str, retry_after_s: float | None = None):
        if error_class not in ERROR_CLASSES:
            raise ValueError(f"unknown error class {error_class!r}")
        super().__init__(message)
        self.error_class = error_class
        self.message = message
        self.retry_after_s = retry_after_s
        self.attempts = 1

    @property
    def kind(self) -> ErrorClass:
        return ERROR_CLASSES[self.error_class]

    def __reduce__(self):
        return type(self), (self.error_class, self.message, self.retry_after_s)
