"""`tld report OUT`: one self-contained HTML page (OUT/report.html) showing what a build kept,
what it rejected and why.

Plots are SVG drawn by matplotlib and thumbnails JPEG, both inlined as data URIs; the clip
table is embedded as JSON and paged by a few lines of script, so the page needs no server and
no network. Galleries and borderline lists are sampled, so a 100,000-clip manifest gives a
page of a few megabytes that opens at once.
"""

from __future__ import annotations

import base64
import html
import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from timelapse_d.config import FilterConfig
from timelapse_d.errors import ConfigError
from timelapse_d.manifest import read_rows
from timelapse_d.publish import plots
from timelapse_d.publish.scores import Threshold, saved_config, thresholds_in
from timelapse_d.publish.thumbnails import clip_thumbnails
from timelapse_d.runs import write_atomic
from timelapse_d.stages.filter import reject_reasons
from timelapse_d.version import __version__

REPORT_NAME = "report.html"
GALLERY_SIZE = 8  # clips shown per reason
BORDERLINE_PER_SIDE = 3  # clips nearest each threshold, on each side
PAGE_ROWS = 100  # rows per page of the clip table
SECTIONS = (
    ("funnel", "Acquisition funnel"),
    ("reasons", "Kept and rejected"),
    ("scores", "Scores and thresholds"),
    ("galleries", "Galleries by reason"),
    ("borderline", "Borderline clips"),
    ("human", "Human and automatic decisions"),
    ("split", "Categories and split"),
    ("shards", "Shards and field shards"),
    ("clips", "All clips"),
)


@dataclass
class Build:
    """What the report reads from a build folder."""

    out: Path
    clips: pa.Table
    videos: list[dict[str, Any]]
    config: dict[str, Any]

    def column(self, name: str) -> list[Any]:
        if name not in self.clips.column_names:
            return [None] * self.clips.num_rows
        return self.clips.column(name).to_pylist()

    def scores(self, name: str) -> np.ndarray:
        """A score column as float64 (NaN where unknown)."""
        if name not in self.clips.column_names:
            return np.full(self.clips.num_rows, np.nan)
        column = self.clips.column(name).cast(pa.float64())
        return column.to_numpy(zero_copy_only=False).astype(np.float64)

    def rows(self, indices: list[int]) -> list[dict[str, Any]]:
        return self.clips.take(pa.array(indices, pa.int64())).to_pylist() if indices else []


def load_build(out: Path) -> Build:
    manifest, videos = out / "manifest.parquet", out / "videos.parquet"
    for path in (manifest, videos):
        if not path.is_file():
            raise ConfigError(f"{path} is missing: run `tld build` on {out} first")
    return Build(out, pq.read_table(manifest), read_rows(videos), saved_config(out))


def write_report(out: Path, target: Path | None = None) -> Path:
    """Write the report of the build in `out` (default OUT/report.html); return its path."""
    build = load_build(out)
    page = render(build)
    target = target or out / REPORT_NAME
    write_atomic(target, lambda fh: fh.write(page.encode()))
    return target


def render(build: Build) -> str:
    """The whole page."""
    status = build.column("status")
    reasons = [r or [] for r in build.column("reject_reasons")]
    gallery = _gallery_picks(status, reasons)
    borderline = _borderline_picks(build)
    wanted = sorted({i for picks in gallery.values() for i in picks} | _flat(borderline))
    rows = dict(zip(wanted, build.rows(wanted), strict=True))
    from timelapse_d.annotation.previews import source_paths

    thumbs = clip_thumbnails(list(rows.values()), source_paths(build.out))
    thresholds = thresholds_in(build.config)
    body = {
        "funnel": _funnel(build, status),
        "reasons": _reasons(status, reasons),
        "scores": _scores(build, status, thresholds),
        "galleries": _galleries(gallery, rows, thumbs, thresholds),
        "borderline": _borderline(borderline, rows, thumbs, thresholds),
        "human": _human(build),
        "split": _split(build, status),
        "shards": _shards(build),
        "clips": _clip_table(build, status, reasons),
    }
    return _page(build, body)


# -- picking clips ---------------------------------------------------------------------------


def _gallery_picks(status: list[str], reasons: list[list[str]]) -> dict[str, list[int]]:
    """Up to GALLERY_SIZE row indices per reject reason (and for `kept`), sampled evenly."""
    members: dict[str, list[int]] = defaultdict(list)
    for index, (state, why) in enumerate(zip(status, reasons, strict=True)):
        for reason in why or ([state] if state == "kept" else []):
            members[reason].append(index)
    ordered = sorted(members.items(), key=lambda kv: (kv[0] != "kept", -len(kv[1]), kv[0]))
    return {
        reason: sorted(random.Random(reason).sample(rows, min(GALLERY_SIZE, len(rows))))
        for reason, rows in ordered
    }


def _borderline_picks(build: Build) -> dict[str, tuple[Threshold, float, list[int]]]:
    """Per score: the clips nearest its threshold, BORDERLINE_PER_SIDE on each side."""
    picks = {}
    for threshold, value in thresholds_in(build.config):
        scores = build.scores(threshold.score)
        distance = np.abs(scores - value)
        chosen: list[int] = []
        for side in (scores < value, scores >= value):
            candidates = np.flatnonzero(side & np.isfinite(scores))
            if len(candidates) > BORDERLINE_PER_SIDE:
                nearest = np.argpartition(distance[candidates], BORDERLINE_PER_SIDE)
                candidates = candidates[nearest[:BORDERLINE_PER_SIDE]]
            chosen += sorted(candidates.tolist(), key=lambda i: distance[i])
        picks[threshold.score] = (threshold, value, chosen)
    return picks


def _flat(borderline: dict[str, tuple[Threshold, float, list[int]]]) -> set[int]:
    return {i for _, _, chosen in borderline.values() for i in chosen}


# -- sections --------------------------------------------------------------------------------


def _funnel(build: Build, status: list[str]) -> str:
    videos = build.videos
    failed = Counter(
        (v.get("error") or "unknown").split(":")[0] for v in videos if v["status"] == "failed"
    )
    used = {
        vid for vid, state in zip(build.column("video_id"), status, strict=True) if state == "kept"
    }
    steps = [
        ("videos found", len(videos)),
        ("videos usable", sum(v["status"] == "ok" for v in videos)),
        ("videos with a kept clip", len(used)),
    ]
    kept = sum(s == "kept" for s in status)
    clip_steps = [("candidate clips", len(status)), ("kept clips", kept)]
    hours = _hours(build, [s == "kept" for s in status])
    table = _table(
        ["step", "count"],
        [[name, f"{count:,}"] for name, count in steps + clip_steps]
        + [["kept footage", f"{hours:.2f} h"]],
    )
    failures = _table(
        ["failure class", "videos"], [[name, f"{n:,}"] for name, n in failed.most_common()]
    )
    chart = plots.bar_chart(
        [name for name, _ in steps + clip_steps] + [f"failed: {k}" for k in sorted(failed)],
        [n for _, n in steps + clip_steps] + [failed[k] for k in sorted(failed)],
        "From sources to kept clips",
        "count",
    )
    return table + (failures if failed else "<p>No video failed.</p>") + _img_svg(chart, "funnel")


def _hours(build: Build, mask: list[bool]) -> float:
    frames, fps = build.scores("num_frames"), build.scores("fps")
    chosen = np.asarray(mask, dtype=bool) & (fps > 0)
    return float(np.sum(frames[chosen] / fps[chosen]) / 3600.0)


def _reasons(status: list[str], reasons: list[list[str]]) -> str:
    counts = Counter(r for why in reasons for r in why)
    kept = sum(s == "kept" for s in status)
    labels = ["kept", "rejected"] + [f"  {r}" for r, _ in counts.most_common()]
    values = [kept, len(status) - kept] + [n for _, n in counts.most_common()]
    rows = [[label.strip(), f"{value:,}"] for label, value in zip(labels, values, strict=True)]
    chart = plots.bar_chart(labels, values, "Clips by decision and reason", "clips")
    note = "<p>A rejected clip may have several reasons.</p>"
    return _table(["decision / reason", "clips"], rows) + note + _img_svg(chart, "reasons")


def _scores(build: Build, status: list[str], thresholds: list[tuple[Threshold, float]]) -> str:
    if not thresholds:
        return "<p>No saved config (OUT/run/config.yaml): thresholds unknown.</p>"
    kept = np.asarray([s == "kept" for s in status], dtype=bool)
    panels = []
    for threshold, value in thresholds:
        scores = build.scores(threshold.score)
        known = np.isfinite(scores)
        panels.append(
            (threshold.score, scores[known & kept], scores[known & ~kept], value, threshold.side)
        )
    rows = [
        [t.score, f"filter.{t.key}", f"{v:.4g}", f"{t.side} rejects ({t.reason})"]
        for t, v in thresholds
    ]
    chart = plots.score_histograms(panels)
    return _table(["score", "setting", "threshold", "rule"], rows) + _img_svg(chart, "scores")


def _galleries(
    gallery: dict[str, list[int]],
    rows: dict[int, dict[str, Any]],
    thumbs: dict[str, list[bytes]],
    thresholds: list[tuple[Threshold, float]],
) -> str:
    parts = []
    for reason, picks in gallery.items():
        cards = "".join(_card(rows[i], thumbs, thresholds) for i in picks)
        parts.append(
            f'<h3 id="gallery-{_e(reason)}">{_e(reason)}</h3><div class="gallery">{cards}</div>'
        )
    return "".join(parts) or "<p>No clips.</p>"


def _card(row: dict[str, Any], thumbs: dict[str, list[bytes]], thresholds: list) -> str:
    images = thumbs.get(row["clip_id"])
    if images:
        strip = "".join(
            f'<img class="thumb" alt="{label} frame" src="data:image/jpeg;base64,'
            f'{base64.b64encode(data).decode()}">'
            for label, data in zip(("first", "middle", "last"), images, strict=True)
        )
    else:
        strip = '<div class="nothumb">source not on disk</div>'
    scores = []
    for threshold, value in thresholds:
        score = row.get(threshold.score)
        if score is None:
            continue
        fails = score < value if threshold.side == "below" else score > value
        css = "score fail" if fails else "score"
        scores.append(
            f'<span class="{css}">{threshold.score} {score:.3g} '
            f"<small>({'min' if threshold.side == 'below' else 'max'} {value:.3g})</small></span>"
        )
    why = ", ".join(row.get("reject_reasons") or []) or "kept"
    return (
        f'<div class="card"><div class="strip">{strip}</div>'
        f'<div class="id">{_e(row["clip_id"])}</div><div class="why">{_e(why)}</div>'
        f'<div class="scores">{"".join(scores)}</div></div>'
    )


def _borderline(
    borderline: dict[str, tuple[Threshold, float, list[int]]],
    rows: dict[int, dict[str, Any]],
    thumbs: dict[str, list[bytes]],
    thresholds: list[tuple[Threshold, float]],
) -> str:
    parts = []
    for score, (threshold, value, chosen) in borderline.items():
        if not chosen:
            continue
        cards = "".join(_card(rows[i], thumbs, thresholds) for i in chosen)
        parts.append(
            f"<h3>{_e(score)} near {value:.4g} ({threshold.side} rejects: {threshold.reason})</h3>"
            f'<div class="gallery">{cards}</div>'
        )
    return "".join(parts) or "<p>No thresholds known.</p>"


def _human(build: Build) -> str:
    decisions = build.column("human_decision")
    labelled = [i for i, d in enumerate(decisions) if d is not None]
    if not labelled:
        return "<p>No human labels yet (`tld annotate pull` adds them).</p>"
    section = build.config.get("filter") or {}
    names = {f.name for f in fields(FilterConfig)}
    config = FilterConfig(**{k: v for k, v in section.items() if k in names})
    table: Counter[tuple[str, str]] = Counter()
    disagreements = []
    for row in build.rows(labelled):
        auto = "reject" if reject_reasons(row, config) else "keep"
        table[(auto, row["human_decision"])] += 1
        if auto != row["human_decision"]:
            disagreements.append(
                [
                    row["clip_id"],
                    auto,
                    row["human_decision"],
                    ", ".join(row.get("human_reasons") or []),
                ]
            )
    agree = table[("keep", "keep")] + table[("reject", "reject")]
    matrix = _table(
        ["automatic \\ human", "keep", "reject"],
        [
            [auto, f"{table[(auto, 'keep')]:,}", f"{table[(auto, 'reject')]:,}"]
            for auto in ("keep", "reject")
        ],
    )
    summary = f"<p>{len(labelled):,} labelled clips; automatic and human agree on {agree:,}.</p>"
    listing = _table(["clip", "automatic", "human", "human reasons"], disagreements[:200])
    return summary + matrix + "<h3>Disagreements (first 200)</h3>" + listing


def _split(build: Build, status: list[str]) -> str:
    counts: Counter[tuple[str, str]] = Counter()
    for state, categories, side in zip(
        status, build.column("categories"), build.column("split"), strict=True
    ):
        if state != "kept":
            continue
        for category in categories or ["(none)"]:
            counts[(category, side or "(unsplit)")] += 1
    if not counts:
        return "<p>No kept clips.</p>"
    categories = sorted({c for c, _ in counts})
    sides = sorted({s for _, s in counts})
    rows = [[c] + [f"{counts[(c, s)]:,}" for s in sides] for c in categories]
    chart = plots.grouped_bars(
        categories,
        {s: [counts[(c, s)] for c in categories] for s in sides},
        "Kept clips per category and split",
        "clips",
    )
    return _table(["category"] + sides, rows) + _img_svg(chart, "split")


def _shards(build: Build) -> str:
    shard_dir = build.out / "shards"
    by_field: dict[str, list[int]] = defaultdict(list)
    for tar in sorted(shard_dir.glob("*-*.tar")) if shard_dir.is_dir() else []:
        by_field[tar.name.partition("-")[0]].append(tar.stat().st_size)
    if not by_field:
        return "<p>No shards.</p>"
    per_shard = Counter(s for s in build.column("shard") if s)
    samples = list(per_shard.values()) or [0]
    rows = [
        [
            name,
            f"{len(sizes):,}",
            f"{sum(sizes) / 1e6:,.1f}",
            f"{min(sizes) / 1e6:,.2f}",
            f"{float(np.median(sizes)) / 1e6:,.2f}",
            f"{max(sizes) / 1e6:,.2f}",
        ]
        for name, sizes in sorted(by_field.items())
    ]
    counts = (
        f"<p>Clips per shard: min {min(samples):,}, median {float(np.median(samples)):,.0f}, "
        f"max {max(samples):,}; every field shard holds the clips of its clip shard.</p>"
    )
    chart = plots.size_histogram(by_field, "Shard sizes")
    header = ["field", "shards", "total MB", "min MB", "median MB", "max MB"]
    return _table(header, rows) + counts + _img_svg(chart, "shard sizes")


def _clip_table(build: Build, status: list[str], reasons: list[list[str]]) -> str:
    seconds = build.scores("num_frames") / np.where(
        build.scores("fps") > 0, build.scores("fps"), np.nan
    )
    data = [
        [clip, state, " ".join(why), None if np.isnan(s) else round(float(s), 1), side]
        for clip, state, why, s, side in zip(
            build.column("clip_id"), status, reasons, seconds, build.column("split"), strict=True
        )
    ]
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return (
        '<div class="pager"><label>show <select id="clip-filter"><option value="">all</option>'
        '<option value="kept">kept</option><option value="rejected">rejected</option></select>'
        '</label> <button id="clip-prev">previous</button> <span id="clip-page"></span> '
        '<button id="clip-next">next</button></div>'
        '<table id="clip-table"><thead><tr><th>clip</th><th>status</th><th>reasons</th>'
        "<th>seconds</th><th>split</th></tr></thead><tbody></tbody></table>"
        f'<script type="application/json" id="clip-data">{payload}</script>'
    )


# -- page ------------------------------------------------------------------------------------


def _img_svg(svg: bytes, alt: str) -> str:
    data = base64.b64encode(svg).decode()
    return f'<img class="plot" alt="{_e(alt)}" src="data:image/svg+xml;base64,{data}">'


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


_STYLE = """
body{font-family:system-ui,sans-serif;margin:0 2em 4em;color:#222;max-width:1400px}
nav a{margin-right:1em} h2{border-bottom:1px solid #ccc;padding-top:1em}
table{border-collapse:collapse;margin:.5em 0;font-size:14px}
td,th{border:1px solid #ddd;padding:2px 8px;text-align:left}
img.plot{max-width:100%;display:block;margin:.5em 0}
.gallery{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid #ccc;padding:6px;width:490px;font-size:12px}
.strip{display:flex;gap:3px}.thumb{width:160px}
.nothumb{height:90px;background:#eee;color:#666;display:flex;align-items:center;padding:0 1em}
.id{font-family:monospace;margin-top:4px}.why{font-weight:bold}
.scores{display:flex;flex-wrap:wrap;gap:2px 10px;font-size:11px;margin-top:3px}
.score.fail{color:#b00;font-weight:bold}
"""

_SCRIPT = """
(function(){
  const rows = JSON.parse(document.getElementById('clip-data').textContent);
  const body = document.querySelector('#clip-table tbody');
  const filter = document.getElementById('clip-filter');
  const label = document.getElementById('clip-page');
  let page = 0;
  function shown(){ return filter.value ? rows.filter(r => r[1] === filter.value) : rows; }
  function draw(){
    const list = shown(); const pages = Math.max(1, Math.ceil(list.length / PAGE));
    page = Math.min(Math.max(page, 0), pages - 1);
    body.replaceChildren(...list.slice(page * PAGE, (page + 1) * PAGE).map(r => {
      const tr = document.createElement('tr');
      for (const v of r) { const td = document.createElement('td');
        td.textContent = v === null ? '' : v; tr.appendChild(td); }
      return tr; }));
    label.textContent = 'page ' + (page + 1) + ' of ' + pages + ' (' + list.length + ' clips)';
  }
  document.getElementById('clip-prev').onclick = () => { page -= 1; draw(); };
  document.getElementById('clip-next').onclick = () => { page += 1; draw(); };
  filter.onchange = () => { page = 0; draw(); };
  draw();
})();
"""


def _page(build: Build, body: dict[str, str]) -> str:
    nav = "".join(f'<a href="#{key}">{_e(title)}</a>' for key, title in SECTIONS)
    sections = "".join(
        f'<section id="{key}" class="report-section"><h2>{_e(title)}</h2>{body[key]}</section>'
        for key, title in SECTIONS
    )
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    script = _SCRIPT.replace("PAGE", str(PAGE_ROWS))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>timelapse-d report: {_e(build.out.name)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>Dataset report: {_e(build.out.name)}</h1>"
        f"<p>timelapse-d {_e(__version__)}, generated {when}.</p><nav>{nav}</nav>{sections}"
        f"<script>{script}</script></body></html>"
    )
