"""The closing summary of a build, also printed by `tld status OUT` for any run state."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from timelapse_d.manifest import read_rows
from timelapse_d.runs import RunDir, read_json
from timelapse_d.shards.naming import clip_shards


@dataclass
class Summary:
    """What a build produced, and what is missing when it was interrupted."""

    out: str
    complete: bool
    videos_ok: int = 0
    videos_failed: int = 0
    video_errors: dict[str, int] = field(default_factory=dict)
    clips_kept: int = 0
    clips_rejected: int = 0
    reject_reasons: dict[str, int] = field(default_factory=dict)
    hours_total: float = 0.0
    hours_kept: float = 0.0
    encode_seconds: float = 0.0
    stream_copied: int = 0
    shards: int = 0
    shard_bytes: int = 0
    task_failures: dict[str, list[str]] = field(default_factory=dict)
    stages_done: dict[str, int] = field(default_factory=dict)

    def text(self) -> str:
        """Human-readable summary, a few lines."""
        state = "complete" if self.complete else "INCOMPLETE (re-run the same command to finish)"
        lines = [f"build {self.out}: {state}"]
        lines.append(f"  videos: {self.videos_ok} ok, {self.videos_failed} failed")
        for reason, count in sorted(self.video_errors.items()):
            lines.append(f"    failed {reason}: {count}")
        lines.append(
            f"  clips: {self.clips_kept} kept ({_duration(self.hours_kept)}), "
            f"{self.clips_rejected} rejected (of {_duration(self.hours_total)} analysed)"
        )
        if self.reject_reasons:
            lines.append("    reasons (a clip may have several):")
        for reason, count in sorted(self.reject_reasons.items(), key=lambda kv: -kv[1]):
            lines.append(f"      {reason}: {count}")
        if self.clips_kept:
            per_minute = self.encode_seconds / (self.hours_kept * 60) if self.hours_kept else 0
            lines.append(
                f"  encoding: {self.stream_copied} of {self.clips_kept} clips stream-copied, "
                f"{per_minute:.1f} s per minute of footage"
            )
        lines.append(
            f"  shards: {self.shards} tars, {self.shard_bytes / 1e6:.1f} MB in {self.out}/shards"
        )
        lines.append(f"  manifests: {self.out}/manifest.parquet, {self.out}/videos.parquet")
        if self.stages_done:
            done = ", ".join(f"{k} {v}" for k, v in self.stages_done.items())
            lines.append(f"  tasks done: {done}")
        for stage, tasks in sorted(self.task_failures.items()):
            lines.append(
                f"  FAILED {stage} tasks: {len(tasks)} (tracebacks in {self.out}/run/failures/"
                f"{stage}/): {', '.join(tasks[:5])}{' ...' if len(tasks) > 5 else ''}"
            )
        return "\n".join(lines)


def _duration(hours: float) -> str:
    if hours >= 1:
        return f"{hours:.1f} h"
    return f"{hours * 60:.1f} min" if hours * 60 >= 1 else f"{hours * 3600:.0f} s"


def _clip_hours(rows: list[dict]) -> float:
    return sum(r["num_frames"] / r["fps"] for r in rows if r.get("fps")) / 3600.0


def _encode_seconds(run: RunDir, clip_id: str) -> float:
    """Time its encode task took (kept in the task's marker: timings are not manifest data)."""
    try:
        return float(read_json(run.marker("encode", clip_id))["stats"].get("encode_seconds", 0.0))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # no marker, or damaged
        return 0.0


def summarize(out: Path, finished: bool | None = None) -> Summary:
    """Summary from the manifests when they exist, and from run markers in any case.

    `finished` says whether the latest build ran to its end; by default it is read from the
    presence of run/summary.json, which a build removes at start and writes last.
    """
    run = RunDir(out)
    if finished is None:
        finished = run.summary_path.exists()
    stages = {
        stage: len(list(run.stage_dir(stage).glob("*.done.json")))
        for stage in ("acquire", "analyze", "encode", "shard")
        if run.stage_dir(stage).exists()
    }
    failures = run.failures()
    manifest, videos_table = out / "manifest.parquet", out / "videos.parquet"
    if not (finished and manifest.exists() and videos_table.exists()):
        return Summary(str(out), complete=False, task_failures=failures, stages_done=stages)
    videos = read_rows(videos_table)
    clips = read_rows(manifest)
    kept = [c for c in clips if c["status"] == "kept"]
    shard_dir = out / "shards"
    tars = clip_shards(shard_dir)
    errors = Counter(
        (v["error"] or "unknown").split(":")[0] for v in videos if v["status"] == "failed"
    )
    complete = finished and not failures
    return Summary(
        out=str(out),
        complete=complete,
        videos_ok=sum(v["status"] == "ok" for v in videos),
        videos_failed=sum(v["status"] == "failed" for v in videos),
        video_errors=dict(errors),
        clips_kept=len(kept),
        clips_rejected=len(clips) - len(kept),
        reject_reasons=dict(Counter(r for c in clips for r in c["reject_reasons"] or [])),
        hours_total=_clip_hours(clips),
        hours_kept=_clip_hours(kept),
        encode_seconds=sum(_encode_seconds(run, c["clip_id"]) for c in kept),
        stream_copied=sum(bool(c.get("stream_copied")) for c in kept),
        shards=len(tars),
        shard_bytes=sum(t.stat().st_size for t in tars),
        task_failures=failures,
        stages_done=stages,
    )
