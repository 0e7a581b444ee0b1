"""Ids from outside (a manifest to rehydrate, a Parquet URL list, a Flickr answer) never become
paths: they match one plain pattern, and tar member names stay plain and relative."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from small_build import last_line, tld
from test_acquire_flickr import CREDENTIALS, catalogue, flickr_config, stand_in

from timelapse_d.acquire.flickr import search_flickr
from timelapse_d.acquire.urls import read_url_list
from timelapse_d.errors import DataError

BAD_IDS = ["../../evil", "/tmp/evil", "a/b", "..", "a.b", "-rf", ""]


def _published(path: Path, clip_id: str, video_id: str) -> Path:
    table = {
        "clip_id": [clip_id],
        "video_id": [video_id],
        "source_uri": ["http://127.0.0.1:9/a.mp4"],
        "start_frame": [0],
        "end_frame": [48],
    }
    pq.write_table(pa.table(table), path)
    return path


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize("column", ["clip_id", "video_id"])
def test_rehydrate_refuses_a_manifest_id_that_is_not_plain(
    tmp_path: Path, bad: str, column: str
) -> None:
    ids = {"clip_id": "url-0123-0000000-0000048", "video_id": "url-0123", column: bad}
    manifest = _published(tmp_path / "published.parquet", **ids)
    result = tld("rehydrate", str(manifest), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{column} {bad!r}, not a plain id" in last_line(result.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["published.parquet"]


@pytest.mark.parametrize("bad", BAD_IDS[:-1])  # an empty id is replaced by the URL's
def test_a_parquet_url_list_with_a_path_for_video_id_is_refused(tmp_path: Path, bad: str) -> None:
    urls = tmp_path / "urls.parquet"
    pq.write_table(pa.table({"url": ["http://127.0.0.1:9/a.mp4"], "video_id": [bad]}), urls)
    with pytest.raises(DataError, match="is not a plain id"):
        read_url_list(urls)


def test_a_flickr_photo_id_with_slashes_writes_no_file(tmp_path: Path) -> None:
    videos = catalogue(3)
    videos[0].id = "../../evil"
    state = tmp_path / "work" / "state"
    with stand_in(videos) as server:
        found = search_flickr(flickr_config(server), state, CREDENTIALS)
    failed = [c for c in found if c.failure is not None]
    assert len(found) == 3 and len(failed) == 1
    assert "malformed id" in failed[0].failure.message
    assert failed[0].video_id.replace("-", "").isalnum()
    assert not [p for p in tmp_path.rglob("*") if "evil" in p.name]
