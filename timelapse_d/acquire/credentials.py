"""API credentials, read from the environment or a credentials file, never from the config.

The values stay in memory: they are not part of any config, record, state file or log line,
and their repr is masked so an accidental log of the object shows nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from timelapse_d.errors import ConfigError

CREDENTIALS_FILE = Path("~/.config/timelapse-d/credentials.yaml")
KEY_ENV, SECRET_ENV = "FLICKR_API_KEY", "FLICKR_API_SECRET"


@dataclass(frozen=True)
class FlickrCredentials:
    key: str = field(repr=False)
    secret: str = field(repr=False)


def flickr_credentials(path: str | Path | None = None) -> FlickrCredentials:
    """The Flickr key and secret: from FLICKR_API_KEY / FLICKR_API_SECRET, else from the
    ``flickr:`` section of the credentials file; ConfigError saying how to set them."""
    file = Path(path or CREDENTIALS_FILE).expanduser()
    key, secret = os.environ.get(KEY_ENV, ""), os.environ.get(SECRET_ENV, "")
    if not (key and secret) and file.is_file():
        section = _file_section(file, "flickr")
        key = key or str(section.get("api_key") or "")
        secret = secret or str(section.get("api_secret") or "")
    missing = [name for name, value in ((KEY_ENV, key), (SECRET_ENV, secret)) if not value]
    if missing:
        raise ConfigError(
            f"Flickr credentials missing ({' and '.join(missing)}). Get a key and secret at "
            "https://www.flickr.com/services/apps/create/ and either export them:\n"
            f"  export {KEY_ENV}=...\n  export {SECRET_ENV}=...\n"
            f"or write them to {file} (readable by you only, chmod 600):\n"
            "  flickr:\n    api_key: ...\n    api_secret: ..."
        )
    return FlickrCredentials(key.strip(), secret.strip())


def _file_section(file: Path, name: str) -> dict:
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read credentials file {file}: {exc.strerror}") from None
    except yaml.YAMLError as exc:  # its text quotes the file: never show it
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"credentials file {file} is not valid YAML{where}") from None
    section = data.get(name) if isinstance(data, dict) else None
    return section if isinstance(section, dict) else {}
