"""Curation labels: taxonomy and labelling config, vote resolution, agreement, human decisions."""

from __future__ import annotations

import math
import random
import xml.etree.ElementTree as ET
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from timelapse_d.annotation.agreement import (
    agreement_report,
    alpha_nominal,
    coincidences,
    gold_accuracy,
)
from timelapse_d.annotation.resolve import annotator_weights, resolve
from timelapse_d.annotation.taxonomy import (
    ANNOTATION_SCHEMA,
    KEEP,
    REJECT,
    Annotation,
    GoldTask,
    label_config_xml,
    latest_answers,
    load_taxonomy,
    parse_annotation,
    read_gold,
)
from timelapse_d.assemble import human_label
from timelapse_d.config import FilterConfig
from timelapse_d.errors import ConfigError, DataError
from timelapse_d.records import Clip
from timelapse_d.stages.filter import HUMAN_REJECT, decide

ANNOTATION_DIR = Path(__file__).resolve().parents[1] / "timelapse_d" / "annotation_config"
CATEGORIES = ["cloud", "star", "water", "waterfall", "hayfield", "traffic", "smoke", "tree",
              "sun", "moon", "aurora", "fire", "fog"]  # fmt: skip


@pytest.fixture(scope="module")
def taxonomy():
    return load_taxonomy(ANNOTATION_DIR / "taxonomy.yaml")


# --- taxonomy and labelling config ---


def test_taxonomy_has_the_thirteen_categories_and_the_reject_reasons(taxonomy) -> None:
    assert list(taxonomy.category_ids) == CATEGORIES
    assert taxonomy.reason_ids == (
        "camera_motion",
        "zoom",
        "not_timelapse",
        "cut_inside",
        "text_watermark",
        "low_quality",
        "other",
    )
    assert [d.id for d in taxonomy.decisions] == [KEEP, REJECT]


def test_installed_taxonomy_is_the_checkout_file(taxonomy) -> None:
    assert load_taxonomy().categories == taxonomy.categories


def test_label_config_is_generated_from_the_taxonomy(taxonomy) -> None:
    text = (ANNOTATION_DIR / "label_config.xml").read_text(encoding="utf-8")
    assert text == label_config_xml(taxonomy), (
        "label_config.xml is stale: python -m timelapse_d.annotation.taxonomy "
        "timelapse_d/annotation_config/taxonomy.yaml > "
        "timelapse_d/annotation_config/label_config.xml"
    )
    root = ET.fromstring(text)
    video = root.find(".//HyperText")  # the task's HTML player: a looping, muted <video>
    assert video is not None and video.get("value") == "$player" and video.get("name") == "video"
    groups = {g.get("name"): g for g in root.iter("Choices")}
    assert set(groups) == {"decision", "reasons", "categories"}
    assert {g.get("toName") for g in groups.values()} == {video.get("name")}
    aliases = {name: [c.get("alias") for c in g.iter("Choice")] for name, g in groups.items()}
    assert aliases == {
        "decision": [KEEP, REJECT],
        "reasons": list(taxonomy.reason_ids),
        "categories": CATEGORIES,
    }
    assert groups["decision"].get("choice") == "single-radio"
    assert groups["decision"].get("required") == "true"
    assert groups["reasons"].get("choice") == groups["categories"].get("choice") == "multiple"
    shown_on_reject = root.find(".//View[@whenChoiceValue='reject']")
    assert shown_on_reject is not None and shown_on_reject.find("Choices") is groups["reasons"]
    assert shown_on_reject.get("whenTagName") == "decision"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("decisions: {}\n", "exactly the sections"),
        (
            "decisions: {keep: {label: K, hint: h}}\nreject_reasons: {x: {label: X, hint: h}}\n"
            "categories: {c: {label: C, hint: h}}\n",
            "decisions must be exactly keep, reject",
        ),
        (
            "decisions: {keep: {label: K, hint: h}, reject: {label: R, hint: h}}\n"
            "reject_reasons: {Bad-Id: {label: X, hint: h}}\ncategories: {c: {label: C, hint: h}}\n",
            "lower case",
        ),
        (
            "decisions: {keep: {label: K, hint: h}, reject: {label: R, hint: h}}\n"
            "reject_reasons: {x: {label: X}}\ncategories: {c: {label: C, hint: h}}\n",
            "needs exactly label and hint",
        ),
    ],
)
def test_invalid_taxonomy_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "taxonomy.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_taxonomy(path)


def test_annotation_rows_are_checked_and_reasons_count_only_with_reject(taxonomy) -> None:
    row = {"clip_id": "c1", "annotator": "a", "decision": KEEP, "reasons": ["zoom"],
           "categories": ["cloud"], "timestamp": "2026-01-01T00:00:00Z"}  # fmt: skip
    assert parse_annotation(row, taxonomy) == Annotation(
        "c1", "a", KEEP, (), ("cloud",), "2026-01-01T00:00:00Z"
    )
    assert parse_annotation({**row, "decision": REJECT}, taxonomy).reasons == ("zoom",)
    with pytest.raises(ConfigError, match="category 'volcano'"):
        parse_annotation({**row, "categories": ["volcano"]}, taxonomy)
    with pytest.raises(ConfigError, match="decision 'maybe'"):
        parse_annotation({**row, "decision": "maybe"}, taxonomy)
    table = pa.Table.from_pylist([row], schema=ANNOTATION_SCHEMA)
    assert parse_annotation(table.to_pylist()[0], taxonomy).categories == ("cloud",)


def test_gold_tasks_read_from_csv_and_parquet(tmp_path: Path, taxonomy) -> None:
    expected = {
        "c1": GoldTask("c1", KEEP, (), ("cloud", "tree")),
        "c2": GoldTask("c2", REJECT, ("camera_motion", "zoom"), ("water",)),
        "c3": GoldTask("c3", REJECT, ("other",), ()),
    }
    csv_path = tmp_path / "gold.csv"
    csv_path.write_text(
        "clip_id,decision,reasons,categories\n"
        "c1,keep,,cloud;tree\n"
        "c2,reject,camera_motion; zoom,water\n"
        "c3,reject,other,\n"
    )
    assert read_gold(csv_path, taxonomy) == expected
    parquet_path = tmp_path / "gold.parquet"
    rows = [
        {"clip_id": t.clip_id, "decision": t.decision, "reasons": list(t.reasons),
         "categories": list(t.categories)}
        for t in expected.values()
    ]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows), parquet_path)
    assert read_gold(parquet_path, taxonomy) == expected
    csv_path.write_text("clip_id,decision,reasons,categories\nc1,keep,,cloud\nc1,keep,,tree\n")
    with pytest.raises(DataError, match="appears twice"):
        read_gold(csv_path, taxonomy)
    csv_path.write_text("clip_id,decision,reasons,categories\nc1,reject,wobble,\n")
    with pytest.raises(DataError, match=r"row 1: .*reject reason 'wobble'"):
        read_gold(csv_path, taxonomy)


# --- votes ---


def _answer(clip: str, annotator: str, decision: str, reasons=(), categories=(), ts="t1"):
    return Annotation(clip, annotator, decision, tuple(reasons), tuple(categories), ts)


HAND_CASE = [
    _answer("c1", "a", REJECT, ["zoom"], ["fog"], ts="t0"),  # replaced by a's later answer
    _answer("c1", "a", KEEP, categories=["cloud", "tree"], ts="t2"),
    _answer("c1", "b", KEEP, categories=["cloud"]),
    _answer("c1", "c", REJECT, ["other"]),
    _answer("c2", "a", KEEP),
    _answer("c2", "b", REJECT, ["camera_motion"]),
    _answer("c3", "a", REJECT, ["camera_motion", "zoom"], ["sun"]),
    _answer("c3", "b", REJECT, ["camera_motion"], ["sun"]),
    _answer("c3", "c", KEEP),
]


def test_plain_majority_equals_the_hand_computed_answers() -> None:
    resolved = resolve(HAND_CASE)
    c1, c2, c3 = (resolved[c] for c in ("c1", "c2", "c3"))
    assert (c1.human_decision, c1.human_reasons, c1.categories) == (KEEP, (), ("cloud",))
    assert (c1.agreement, c1.n_annotations, c1.tie) == (pytest.approx(2 / 3), 3, False)
    # one keep, one reject: a tie rejects and is flagged
    assert (c2.human_decision, c2.human_reasons, c2.agreement, c2.tie) == (
        REJECT,
        ("camera_motion",),
        0.5,
        True,
    )
    # reasons named by at least half of the rejecting weight (zoom: 1 of 2)
    assert (c3.human_decision, c3.human_reasons, c3.categories) == (
        REJECT,
        ("camera_motion", "zoom"),
        ("sun",),
    )
    assert c3.agreement == pytest.approx(2 / 3)


def test_weighted_vote_follows_the_heavier_annotator() -> None:
    resolved = resolve(HAND_CASE, {"a": 2.0, "b": 0.5, "c": 0.5})
    assert resolved["c2"].human_decision == KEEP  # a (2.0) against b (0.5)
    assert resolved["c2"].agreement == pytest.approx(0.8)
    assert resolved["c3"].human_decision == REJECT  # a + b (2.5) against c (0.5)
    assert resolved["c1"].categories == ("cloud", "tree")  # tree: a alone holds 2 of 3
    zero = resolve(HAND_CASE, {"a": 0.0, "b": 0.0, "c": 0.0})
    assert zero == resolve(HAND_CASE)  # all at chance: plain majority
    with pytest.raises(ValueError, match=r"no weight for annotators \['c'\]"):
        resolve(HAND_CASE, {"a": 1.0, "b": 1.0})


def test_annotator_weights_are_log_odds_of_smoothed_gold_accuracy() -> None:
    gold = {f"g{i}": GoldTask(f"g{i}", KEEP) for i in range(10)}
    answers = [_answer(f"g{i}", "good", KEEP if i else REJECT) for i in range(10)]  # 9 of 10
    answers += [_answer(f"g{i}", "poor", KEEP if i < 4 else REJECT) for i in range(10)]  # 4/10
    answers.append(_answer("other", "new", KEEP))  # no gold task answered
    weights = annotator_weights(answers, gold)
    assert weights["good"] == pytest.approx(math.log(11 / 2))  # p = (9 + 2) / (10 + 3)
    assert weights["new"] == pytest.approx(math.log(2))  # p = 2/3
    assert weights["poor"] == 0.0  # p = 6/13 is below chance


ACCURACY = {"reliable_1": 0.9, "reliable_2": 0.9, "unreliable": 0.4}


def _simulate(seed: int, clips: int, gold_tasks: int = 10):
    """Truth, gold tasks and every annotator's answers (right with their ACCURACY)."""
    rng = random.Random(seed)
    truth = {f"clip{i:04d}": rng.choice([KEEP, REJECT]) for i in range(clips)}
    gold = {f"gold{i:02d}": GoldTask(f"gold{i:02d}", rng.choice([KEEP, REJECT]))
            for i in range(gold_tasks)}  # fmt: skip
    answers = []
    for clip, right in {**truth, **{c: g.decision for c, g in gold.items()}}.items():
        for annotator, accuracy in ACCURACY.items():
            wrong = REJECT if right == KEEP else KEEP
            answers.append(_answer(clip, annotator, right if rng.random() < accuracy else wrong))
    return truth, gold, answers


def _accuracy(resolved, truth) -> float:
    return sum(resolved[c].human_decision == t for c, t in truth.items()) / len(truth)


def test_weighted_vote_beats_majority_with_an_unreliable_annotator() -> None:
    truth, gold, answers = _simulate(seed=0, clips=30)
    weights = annotator_weights(answers, gold)
    assert weights["unreliable"] < min(weights["reliable_1"], weights["reliable_2"])
    weighted, majority = (
        _accuracy(resolve(answers, weights), truth),
        _accuracy(resolve(answers), truth),
    )
    assert (weighted, majority) == (pytest.approx(29 / 30), pytest.approx(28 / 30))
    # 30 clips is one draw; over 10,000 clips the gain is 1.5 points (5 standard errors)
    gains = []
    for seed in range(10):
        truth, gold, answers = _simulate(seed, clips=1000)
        weights = annotator_weights(answers, gold)
        gains.append(
            _accuracy(resolve(answers, weights), truth) - _accuracy(resolve(answers), truth)
        )
    assert sum(gains) / len(gains) > 0.007


# --- agreement ---


def test_krippendorff_alpha_on_a_hand_computed_case() -> None:
    units = [["a", "a"], ["a", "b"], ["b", "b", None], ["a", "a", "b"], ["a", None]]
    # pairs weighted 1/(m-1); the last unit has one value and drops out
    assert coincidences(units) == {
        ("a", "a"): 3.0,
        ("a", "b"): 2.0,
        ("b", "a"): 2.0,
        ("b", "b"): 2.0,
    }
    # n_a = 5, n_b = 4, n = 9: alpha = 1 - 8 * 4 / (2 * 5 * 4)
    assert alpha_nominal(units) == pytest.approx(0.2)
    assert alpha_nominal([["a", "a"], ["b", "b"]]) == pytest.approx(1.0)
    assert alpha_nominal([["a", "a"], ["a", "a", "a"]]) is None  # one value: undefined


def test_krippendorff_alpha_on_the_published_example() -> None:
    """Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": 4 observers, 12
    units, nominal alpha 0.743."""
    n = None
    observers = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3],
        [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n],
    ]
    assert round(alpha_nominal(list(zip(*observers, strict=True))), 3) == 0.743


def test_gold_accuracy_per_annotator_on_a_hand_case() -> None:
    gold = {
        "g1": GoldTask("g1", KEEP, (), ("cloud",)),
        "g2": GoldTask("g2", REJECT, ("zoom",), ()),
        "g3": GoldTask("g3", KEEP, (), ("tree", "sun")),
    }
    answers = [
        _answer("g1", "x", KEEP, categories=["cloud"]),  # right, overlap 1
        _answer("g2", "x", KEEP),  # wrong, overlap 1 (both empty)
        _answer("g3", "x", KEEP, categories=["tree"]),  # right, overlap 1/2
        _answer("c9", "x", REJECT),  # not a gold task
        _answer("g2", "y", KEEP, ts="t0"),
        _answer("g2", "y", REJECT, ts="t5"),  # the later answer counts
    ]
    scores = gold_accuracy(answers, gold)
    assert (scores["x"].tasks, scores["x"].correct) == (3, 2)
    assert scores["x"].accuracy == pytest.approx(2 / 3)
    assert scores["x"].category_overlap == pytest.approx(2.5 / 3)
    assert (scores["y"].tasks, scores["y"].accuracy) == (1, 1.0)


def test_agreement_report_values_and_text() -> None:
    answers = HAND_CASE + [_answer("c2", "c", KEEP)]
    report = agreement_report(answers, CATEGORIES, {"c2": GoldTask("c2", KEEP)})
    assert (report.clips, report.annotations) == (3, 9)
    assert report.per_annotator == {"a": 3, "b": 3, "c": 3}
    decisions = [["keep", "keep", "reject"], ["keep", "reject", "keep"], ["reject"] * 2 + ["keep"]]
    assert report.decision_alpha == pytest.approx(alpha_nominal(decisions))
    assert report.category_alpha["sun"] == pytest.approx(
        alpha_nominal([[False] * 3, [False] * 3, [True, True, False]])
    )
    assert report.category_alpha["fire"] is None  # never named
    assert report.category_clips["cloud"] == 1
    assert report.gold["b"].accuracy == 0.0
    text = report.text()
    assert f"{report.decision_alpha:.3f}" in text
    assert "fire" in text and "n/a" in text
    assert "b      3     1    0.0%" in text


def test_latest_answers_keep_one_per_clip_and_annotator() -> None:
    latest = latest_answers(HAND_CASE)
    assert len(latest) == 8
    assert next(a for a in latest if (a.clip_id, a.annotator) == ("c1", "a")).decision == KEEP


# --- human decisions in the manifest ---

CLEAN = {
    "width": 1280,
    "height": 720,
    "num_frames": 200,
    "camera_translation": 0.0,
    "camera_drift": 0.0,
    "camera_zoom": 0.0,
    "camera_rotation": 0.0,
    "camera_shake": 0.0,
    "scene_motion": 1e-3,
    "frame_change": 0.05,
    "stills": 0,
    "mean_still_s": 0.0,
    "sharpness": 0.6,
    "highlight_luma": 0.5,
    "clipped_white": 0.01,
    "status": "kept",
    "reject_reasons": [],
}
HUMAN_COLUMNS = {"human_decision", "human_reasons", "categories", "agreement", "n_annotations"}


def _manifest() -> list[dict]:
    panning = {
        "camera_translation": 5e-3,
        "status": "rejected",
        "reject_reasons": ["camera_motion"],
    }
    return [
        {**CLEAN, "clip_id": "clean"},
        {**CLEAN, "clip_id": "clean_rejected_by_human"},
        {**CLEAN, **panning, "clip_id": "pan_kept_by_human"},
        {**CLEAN, **panning, "clip_id": "pan_unannotated"},
        {**CLEAN, **panning, "clip_id": "short_pan_kept", "num_frames": 10},
        {**CLEAN, "clip_id": "dup_kept", "status": "rejected", "reject_reasons": ["duplicate"]},
    ]


def _resolution(clip: str, decision: str, reasons=()):
    answers = [_answer(clip, name, decision, reasons, ["cloud"]) for name in ("a", "b")]
    return resolve(answers)[clip]


RESOLVED = {
    "clean": _resolution("clean", KEEP),
    "clean_rejected_by_human": _resolution("clean_rejected_by_human", REJECT, ["text_watermark"]),
    "pan_kept_by_human": _resolution("pan_kept_by_human", KEEP),
    "short_pan_kept": _resolution("short_pan_kept", KEEP),
    "dup_kept": _resolution("dup_kept", KEEP),
}


def _decide(rows: list[dict], labels: dict, config: FilterConfig, **options) -> list[dict]:
    """`decide` over manifest rows as `assemble` runs it (labels present: unanswered clips too)."""
    return [
        decide(Clip.from_row(row), config, human_label(labels, row["clip_id"]), **options).row()
        for row in rows
    ]


def test_human_decisions_redecide_status_without_touching_scores() -> None:
    before = _manifest()
    after = _decide(before, RESOLVED, FilterConfig())
    decided = {r["clip_id"]: (r["status"], r["reject_reasons"]) for r in after}
    assert decided == {
        "clean": ("kept", []),
        "clean_rejected_by_human": ("rejected", [HUMAN_REJECT]),  # a human reject wins
        "pan_kept_by_human": ("kept", []),  # camera_motion is soft
        "pan_unannotated": ("rejected", ["camera_motion"]),
        "short_pan_kept": ("rejected", ["too_short"]),  # too_short is never overridden
        "dup_kept": ("rejected", ["duplicate"]),  # stage reasons are carried over
    }
    rejected = next(r for r in after if r["clip_id"] == "clean_rejected_by_human")
    assert rejected["human_reasons"] == ["text_watermark"]
    assert (rejected["human_decision"], rejected["categories"]) == (REJECT, ["cloud"])
    assert (rejected["agreement"], rejected["n_annotations"]) == (1.0, 2)
    unannotated = next(r for r in after if r["clip_id"] == "pan_unannotated")
    assert unannotated.get("human_decision") is None and unannotated["n_annotations"] == 0
    for old, new in zip(before, after, strict=True):
        untouched = set(old) - {"status", "reject_reasons"}
        assert {k: new[k] for k in untouched} == {k: old[k] for k in untouched}
    assert before == _manifest()  # the input rows are not modified
    assert _decide(after, RESOLVED, FilterConfig()) == after  # idempotent


def test_a_build_never_pulled_has_no_human_columns() -> None:
    after = _decide(_manifest(), None, FilterConfig())
    assert not any(HUMAN_COLUMNS & set(row) for row in after)
    assert [r["status"] for r in after] == ["kept", "kept", *["rejected"] * 4]


def test_thresholds_and_soft_reasons_are_applied_from_stored_scores() -> None:
    loose = FilterConfig(max_camera_translation=1e-2)
    after = _decide(_manifest(), {}, loose)
    assert next(r for r in after if r["clip_id"] == "pan_unannotated")["status"] == "kept"
    strict = _decide(_manifest(), RESOLVED, FilterConfig(), soft_reasons={"static"})
    kept_pan = next(r for r in strict if r["clip_id"] == "pan_kept_by_human")
    assert (kept_pan["status"], kept_pan["reject_reasons"]) == ("rejected", ["camera_motion"])
    with pytest.raises(ConfigError, match="cannot override"):
        _decide(_manifest(), RESOLVED, FilterConfig(), soft_reasons={"too_short"})
