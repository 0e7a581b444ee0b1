"""Licence policy: which of a catalogue's licences a build accepts.

Licences are read from the catalogue (Flickr's ``photos.licenses.getInfo``), never from a table
of ids, and sorted into *kinds* by their URL, or by their name when the URL says nothing:
Creative Commons codes (``by``, ``by-sa``, ``by-nc``, ``by-nd``, ``by-nc-sa``, ``by-nc-nd``),
``cc0``, ``pdm`` (public domain mark), ``nkcr`` (no known copyright restrictions), ``usgov``
(United States government work), ``arr`` (all rights reserved) or ``unknown``.
A policy lists kinds; an entry may also be a licence id, for catalogues users know by id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from timelapse_d.errors import ConfigError

_CC_URL = re.compile(r"creativecommons\.org/licenses/([a-z-]+)/")
_CC_NAME = re.compile(r"\bcc[ -]((?:by|nc|sa|nd)(?:-(?:by|nc|sa|nd))*)\b")
_CC_WORDS = (("noncommercial", "nc"), ("noderiv", "nd"), ("sharealike", "sa"))
KINDS = frozenset(
    {"by", "by-sa", "by-nc", "by-nd", "by-nc-sa", "by-nc-nd"}
    | {"cc0", "pdm", "nkcr", "usgov", "arr", "unknown"}
)


@dataclass(frozen=True)
class License:
    id: str
    name: str
    url: str

    @property
    def kind(self) -> str:
        return license_kind(self.name, self.url)


def license_kind(name: str, url: str) -> str:
    """The kind of a licence from its URL, else its name."""
    url, name = url.lower(), name.lower()
    match = _CC_URL.search(url)
    if match:
        return match.group(1)
    if "publicdomain/zero" in url or "cc0" in name:
        return "cc0"
    if "publicdomain/mark" in url or "public domain mark" in name:
        return "pdm"
    if "commons/usage" in url or "no known copyright" in name:
        return "nkcr"
    if "usa.gov" in url or "government work" in name:
        return "usgov"
    if "all rights reserved" in name:
        return "arr"
    match = _CC_NAME.search(name)
    if match:
        return match.group(1)
    if "attribution" in name:
        return "-".join(["by"] + [code for word, code in _CC_WORDS if word in name])
    return "unknown"


def parse_licenses(payload: dict) -> list[License]:
    """Licences from a ``photos.licenses.getInfo`` answer."""
    return [
        License(str(item["id"]), str(item.get("name", "")), str(item.get("url", "")))
        for item in payload["licenses"]["license"]
    ]


def accepted(licenses: list[License], policy: list[str]) -> list[License]:
    """The licences a policy (kinds or ids) accepts; ConfigError for entries matching none."""
    wanted = {str(entry).strip().lower() for entry in policy}
    ids = {lic.id for lic in licenses}
    unknown = sorted(wanted - KINDS - ids)
    if unknown:
        raise ConfigError(
            f"unknown licence kinds or ids {unknown}; kinds: {', '.join(sorted(KINDS))}; "
            f"ids: {', '.join(f'{lic.id} ({lic.name})' for lic in licenses)}"
        )
    chosen = [lic for lic in licenses if lic.kind in wanted or lic.id in wanted]
    if not chosen:
        raise ConfigError(f"no licence of the catalogue matches {sorted(wanted)}")
    return chosen
