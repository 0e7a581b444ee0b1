from pathlib import Path

import pytest

from timelapse_d.config import (
    ConfigError,
    builtin_recipe,
    fingerprint,
    parse_set,
    resolve_config,
    valid_keys,
)


def test_defaults_then_builtin_recipe_then_user_recipe_then_set(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("filter:\n  min_height: 240\n  min_frames: 10\nencode:\n  crf: 23\n")
    config = resolve_config(
        source="synthetic", recipe=recipe, overrides=parse_set(["filter.min_frames=7"])
    )
    assert config.filter.min_height == 240  # user recipe beats the shipped synthetic recipe
    assert config.filter.min_frames == 7  # --set beats the recipe
    assert config.encode.crf == 23
    assert config.shard.max_bytes == 2_000_000  # from the shipped synthetic recipe


def test_shipped_recipes_are_found_in_the_package() -> None:
    assert builtin_recipe("synthetic") is not None
    assert builtin_recipe("local") is not None
    assert builtin_recipe("no-such-source") is None


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("filter.bogus=1", "unknown config key 'filter.bogus'"),
        ("filter=1", "is a section"),
        ("filter.min_height=tall", "expects a int"),
        ("novalue", "expects key=value"),
    ],
)
def test_bad_overrides_fail_at_start_with_a_clear_message(item: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_config(source="local", overrides=parse_set([item]))


def test_ints_are_accepted_for_float_keys_and_keys_are_listed() -> None:
    config = resolve_config(source="local", overrides={"filter.max_camera_zoom": 1})
    assert config.filter.max_camera_zoom == 1.0
    assert "filter.min_height" in valid_keys() and "filter.min_frames" in valid_keys()


def test_fingerprint_changes_with_any_part() -> None:
    assert fingerprint({"a": 1}, "x") == fingerprint({"a": 1}, "x")
    assert fingerprint({"a": 1}, "x") != fingerprint({"a": 2}, "x")
