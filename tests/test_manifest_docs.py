from pathlib import Path

from timelapse_d.manifest import (
    CLIP_COLUMNS,
    CLIP_SCHEMA,
    VIDEO_COLUMNS,
    VIDEO_SCHEMA,
    schema_markdown,
)

REPO = Path(__file__).resolve().parents[1]


def test_manifest_readme_is_generated_from_code() -> None:
    assert (REPO / "manifests" / "README.md").read_text() == schema_markdown(), (
        "regenerate with: tld schema > manifests/README.md"
    )


def test_every_contract_column_is_documented() -> None:
    assert set(VIDEO_SCHEMA.names) == set(VIDEO_COLUMNS)
    assert set(CLIP_SCHEMA.names) <= set(CLIP_COLUMNS)
