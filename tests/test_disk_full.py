"""A full disk is a failure of the machine, never of a clip: nothing recorded, one line, exit 3,
and the re-run after space is freed gives what an uninterrupted build gives."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from small_build import build_command, build_into, last_line, small_input, snapshot, tld

from timelapse_d.errors import HostError
from timelapse_d.stages.encode import _run_ffmpeg, require_ffmpeg

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_input(tmp_path_factory.mktemp("input"))


@pytest.fixture(scope="module")
def reference(source: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return snapshot(build_into(source, tmp_path_factory.mktemp("reference") / "out"))


def _mount_tmpfs(folder: Path, size: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    command = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)]
    return subprocess.run(command, capture_output=True).returncode == 0


def test_a_disk_that_fills_during_encode_loses_no_clip(
    source: Path, reference: dict, tmp_path: Path
) -> None:
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "8m"):
        pytest.skip("mounting a tmpfs needs root")
    try:
        out = disk / "out"
        filler = disk / "filler"
        # Leave about 1.3 MB: analysis fits, the 2 MB of encoded clips do not.
        filler.write_bytes(bytes(7_000_000))
        failed = tld(*build_command(source, out))
        assert failed.returncode == 3, failed.stderr
        assert "Traceback" not in failed.stderr
        assert last_line(failed.stderr).startswith("error: ")
        assert "No space left on device" in last_line(failed.stderr)
        markers = [json.loads(p.read_text()) for p in (out / "run" / "encode").glob("*.done.json")]
        assert len(markers) < sum(len(s) for s in reference["shards"].values())  # it did stop
        assert not any("encode_error" in m["stats"] for m in markers)
        filler.unlink()
        rerun = tld(*build_command(source, out))
        assert rerun.returncode == 0, rerun.stderr
        assert snapshot(out) == reference
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_ffmpeg_failing_to_write_is_a_host_error_even_when_it_exits_zero() -> None:
    # ffmpeg exits 0 after it fails to write the trailer: the clip is not at fault.
    command = [require_ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    command += ["-f", "lavfi", "-i", "testsrc=size=64x64", "-frames:v", "30"]
    with pytest.raises(HostError, match="No space left on device"):
        _run_ffmpeg([*command, "-f", "mpegts", "/dev/full"])


def test_a_full_disk_at_the_header_is_named_in_the_error() -> None:
    # What ffmpeg prints when the disk fills as it writes the header: the last line says
    # nothing about the disk.
    lines = ["[mp4 @ 0x1] Error writing header: No space left on device", "Error initializing "
             "output stream 0:0 --"]  # fmt: skip
    script = "; ".join(f"echo '{line}' >&2" for line in lines) + "; exit 1"
    with pytest.raises(HostError, match="ffmpeg: .*header: No space left on device$"):
        _run_ffmpeg(["sh", "-c", script])


def test_a_killed_ffmpeg_is_a_host_error() -> None:
    with pytest.raises(HostError, match="killed by signal 9"):
        _run_ffmpeg(["sh", "-c", "kill -9 $$"])


def test_a_stage_does_not_start_below_the_free_space_margin(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = tld(*build_command(source, out, min_free_mb=str(10**12)))
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    assert "MB free on the disk of" in last_line(result.stderr)
    assert not out.exists()  # a build failing at start leaves no folder it created


def test_a_clip_recorded_unreadable_for_a_full_disk_is_encoded_again(
    source: Path, reference: dict, tmp_path: Path
) -> None:
    """Builds of earlier versions recorded ffmpeg's 'No space left' as the clip's error."""
    out = tmp_path / "out"
    assert tld(*build_command(source, out)).returncode == 0
    marker = next((out / "run" / "encode").glob("*.done.json"))
    recorded = json.loads(marker.read_text())
    error = "ffmpeg failed (1): Error closing file x.mp4: No space left on device"
    recorded["stats"], recorded["outputs"] = {"encode_error": error}, {}
    marker.write_text(json.dumps(recorded))
    marker.with_name(marker.name.replace(".done.json", ".mp4")).unlink()
    shutil.rmtree(out / "shards")
    assert tld(*build_command(source, out)).returncode == 0
    assert snapshot(out) == reference
