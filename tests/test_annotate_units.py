"""`tld annotate` pieces that need no server: selection, pre-annotations, reading exports,
connection errors that name the problem and never the token."""

from __future__ import annotations

from pathlib import Path

import pytest

from timelapse_d.annotation.pull import annotation_rows
from timelapse_d.annotation.push import (
    is_borderline,
    pre_annotation,
    score_hints,
    select_clips,
    task_data,
)
from timelapse_d.annotation.resolve import resolve
from timelapse_d.annotation.server import AnnotationServerError, executable
from timelapse_d.annotation.studio import Connection, Studio, resolve_connection
from timelapse_d.annotation.taxonomy import Annotation, guidelines_html, load_taxonomy
from timelapse_d.config import FilterConfig
from timelapse_d.errors import ConfigError

CONFIG = FilterConfig()


def _clip(clip_id: str, status: str = "kept", reasons: tuple[str, ...] = (), **scores) -> dict:
    """A manifest row whose scores pass every threshold of `CONFIG` unless given."""
    base = {
        "camera_translation": 0.1e-3, "camera_drift": 0.1e-3, "camera_zoom": 0.1e-3,
        "camera_rotation": 0.1e-3, "camera_shake": 0.1e-3, "scene_motion": 1e-3,
        "frame_change": 0.05, "sharpness": 0.8, "highlight_luma": 0.6, "clipped_white": 0.0,
        "height": 720, "width": 1280, "num_frames": 100, "stills": 0, "mean_still_s": 0.0,
    }  # fmt: skip
    return {"clip_id": clip_id, "video_id": "v", "status": status,
            "reject_reasons": list(reasons), **base, **scores}  # fmt: skip


def test_borderline_means_a_score_within_the_factor_of_its_threshold() -> None:
    assert not is_borderline(_clip("a"), CONFIG, 1.5)
    limit = CONFIG.max_camera_translation
    assert is_borderline(_clip("b", camera_translation=limit * 1.3), CONFIG, 1.5)
    assert is_borderline(_clip("c", camera_translation=limit / 1.3), CONFIG, 1.5)
    assert not is_borderline(_clip("d", camera_translation=limit * 2), CONFIG, 1.5)
    assert is_borderline(_clip("e", sharpness=CONFIG.min_sharpness * 1.2), CONFIG, 1.5)
    assert not is_borderline(_clip("f", sharpness=None), CONFIG, 1.5)  # not measured


def test_selection_always_includes_gold_and_skips_clips_without_footage() -> None:
    rows = [
        _clip("kept"),
        _clip("rejected", "rejected", ("camera_motion",), camera_translation=0.01),
        _clip("edge", camera_shake=CONFIG.max_camera_shake * 0.9),
        {**_clip("broken", "rejected", ("unreadable",)), "encode_error": "bad"},
    ]
    ids = lambda clips: [c["clip_id"] for c in clips]  # noqa: E731
    assert ids(select_clips(rows, "all", CONFIG)) == ["kept", "rejected", "edge"]
    assert ids(select_clips(rows, "kept", CONFIG)) == ["kept", "edge"]
    assert ids(select_clips(rows, "borderline", CONFIG, gold=["kept"])) == ["kept", "edge"]
    with pytest.raises(ConfigError, match="gold clips not in the manifest"):
        select_clips(rows, "all", CONFIG, gold=["elsewhere"])
    for wrong in ("some", "reason=", "reason=windy", "reason=human_reject"):
        with pytest.raises(ConfigError, match="--select must be one of .*reason=.*camera_motion"):
            select_clips(rows, wrong, CONFIG)


def test_selection_skips_clips_no_answer_can_rescue_unless_their_reason_is_asked() -> None:
    rows = [
        _clip("moving", "rejected", ("camera_motion",), camera_zoom=0.01),
        _clip("short", "rejected", ("too_short",), num_frames=10),
        _clip("small", "rejected", ("low_resolution", "camera_motion"), height=100, camera_zoom=1),
        _clip("unreadable", "rejected", ("unreadable",)),
        _clip("dark", "rejected", ("too_dark",), highlight_luma=0.01),
    ]
    ids = lambda clips: [c["clip_id"] for c in clips]  # noqa: E731
    assert ids(select_clips(rows, "all", CONFIG)) == ["moving", "dark"]
    assert ids(select_clips(rows, "all", CONFIG, gold=["short"])) == ["moving", "short", "dark"]
    assert ids(select_clips(rows, "reason=camera_motion", CONFIG)) == ["moving"]
    assert ids(select_clips(rows, "reason=too_dark", CONFIG)) == ["dark"]
    assert ids(select_clips(rows, "reason=too_short", CONFIG)) == ["short"]
    assert ids(select_clips(rows, "reason=low_resolution", CONFIG)) == ["small"]


def test_selected_clips_carry_the_automatic_decision_not_the_human_one() -> None:
    """After a pull, a row's status and reasons include the annotators' verdict; what is sent
    again is decided from the scores alone."""
    pulled = [
        {**_clip("overruled", "kept", (), camera_zoom=0.01), "human_decision": "keep"},
        {**_clip("human", "rejected", ("human_reject",)), "human_decision": "reject"},
    ]
    clips = {c["clip_id"]: c for c in select_clips(pulled, "all", CONFIG)}
    assert (clips["overruled"]["status"], clips["overruled"]["reject_reasons"]) == (
        "rejected",
        ["camera_motion"],
    )
    assert (clips["human"]["status"], clips["human"]["reject_reasons"]) == ("kept", [])
    data = task_data(clips["overruled"], "/data/local-files/?d=a&b.mp4", CONFIG)
    assert (data["auto_status"], data["auto_reasons"]) == ("rejected", "camera_motion")
    assert 'src="/data/local-files/?d=a&amp;b.mp4"' in data["player"]
    assert {"autoplay", "muted", "loop"} <= set(data["player"].split())
    assert "gold" not in data and "human" not in str(data)


def test_hints_name_the_scores_near_or_past_their_threshold_without_the_verdict() -> None:
    limit = CONFIG.max_camera_shake
    hints = score_hints(
        _clip("a", camera_shake=limit * 1.2, sharpness=CONFIG.min_sharpness / 4), CONFIG
    )
    assert f"camera shake {limit * 1.2:.3g} (at most {limit:.3g})" in hints
    assert (
        f"sharpness {CONFIG.min_sharpness / 4:.3g} (at least {CONFIG.min_sharpness:.3g})" in hints
    )
    assert "camera zoom" not in hints and "keep" not in hints and "reject" not in hints
    assert "none near its threshold" in score_hints(_clip("b"), CONFIG)


def test_pre_annotation_carries_the_automatic_decision_and_reasons() -> None:
    taxonomy = load_taxonomy()
    kept = pre_annotation(_clip("a"), taxonomy)["result"]
    assert [r["value"]["choices"] for r in kept] == [["keep"]]
    rejected = pre_annotation(_clip("b", "rejected", ("static", "blurry", "duplicate")), taxonomy)
    choices = {r["from_name"]: r["value"]["choices"] for r in rejected["result"]}
    assert choices == {"decision": ["reject"], "reasons": ["low_quality", "not_timelapse", "other"]}


def test_exported_annotations_become_rows_and_skips_are_dropped() -> None:
    def result(decision: str, reasons=(), categories=()) -> list[dict]:
        parts = [
            ("decision", [decision]),
            ("reasons", list(reasons)),
            ("categories", list(categories)),
        ]
        return [{"from_name": n, "type": "choices", "value": {"choices": v}} for n, v in parts if v]

    tasks = [
        {"data": {"clip_id": "c1"}, "annotations": [
            {"completed_by": 2, "result": result("reject", ["zoom"], ["cloud"]),
             "created_at": "2026-11-22T08:00:00Z", "updated_at": "2026-11-22T09:30:00.5+01:00"},
            {"completed_by": 3, "result": [], "was_cancelled": True,
             "created_at": "2026-11-22T08:00:00Z"},
            {"completed_by": 9, "result": result("keep"), "created_at": "2026-11-22T08:00:00Z"},
        ]},
    ]  # fmt: skip
    rows = annotation_rows(tasks, {2: "a@example.org"})
    assert rows == [
        {"clip_id": "c1", "annotator": "a@example.org", "decision": "reject", "reasons": ["zoom"],
         "categories": ["cloud"], "timestamp": "2026-11-22T08:30:00.500000Z"},
        {"clip_id": "c1", "annotator": "user-9", "decision": "keep", "reasons": [],
         "categories": [], "timestamp": "2026-11-22T08:00:00.000000Z"},
    ]  # fmt: skip


def test_missing_server_environment_names_the_install_command(tmp_path: Path) -> None:
    with pytest.raises(AnnotationServerError, match="tld annotate server install --venv"):
        executable(tmp_path / "venv")


def test_unreachable_server_is_a_clear_error_without_the_token(tmp_path: Path) -> None:
    pytest.importorskip("label_studio_sdk")
    token = "secret-token-that-must-not-leak-1234"
    studio = Studio(Connection("http://127.0.0.1:9", token, tmp_path), timeout_s=2)
    with pytest.raises(AnnotationServerError, match="did not answer") as caught:
        studio.tasks(1)
    assert token not in str(caught.value) and token not in repr(studio.__dict__)


def test_connection_needs_a_url_and_a_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "LABEL_STUDIO_FILES_ROOT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(AnnotationServerError, match="no Label Studio server"):
        resolve_connection(data_dir=tmp_path)
    with pytest.raises(AnnotationServerError, match="no API token"):
        resolve_connection("http://127.0.0.1:8080", data_dir=tmp_path)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "t0k")
    with pytest.raises(AnnotationServerError, match="--files-root"):
        resolve_connection("http://127.0.0.1:8080", data_dir=tmp_path)
    connection = resolve_connection(
        "http://127.0.0.1:8080/", files_root=tmp_path, data_dir=tmp_path
    )
    assert connection.url == "http://127.0.0.1:8080" and "t0k" not in repr(connection)


def test_agreement_is_empty_for_a_clip_with_one_annotator() -> None:
    answers = [
        Annotation("alone", "a", "keep", timestamp="2026-01-01T00:00:00Z"),
        Annotation("pair", "a", "keep", timestamp="2026-01-01T00:00:00Z"),
        Annotation("pair", "b", "reject", ("zoom",), timestamp="2026-01-01T00:00:00Z"),
        Annotation("pair", "c", "keep", timestamp="2026-01-01T00:00:00Z"),
    ]
    resolved = resolve(answers)
    assert resolved["alone"].agreement is None and resolved["alone"].n_annotations == 1
    assert resolved["pair"].agreement == pytest.approx(2 / 3)


def test_guidelines_become_html_with_their_lists_and_tables(tmp_path: Path) -> None:
    source = tmp_path / "guidelines.md"
    source.write_text("# Title\n\n1. one\n2. two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    text = guidelines_html(source)
    assert "<h1>Title</h1>" in text and "<li>two</li>" in text
    assert "<th>a</th>" in text and "<td>2</td>" in text
