from pathlib import Path

import pytest

from timelapse_d.config import builtin_recipe, fingerprint, parse_set, resolve_config, valid_keys
from timelapse_d.errors import ConfigError


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
        # NaN, infinite and empty values (issue 14 item 4, issue 16 item 9)
        ("filter.max_camera_translation=.nan", "must be a finite number"),
        ("filter.max_camera_shake=.inf", "must be a finite number"),
        ("filter.min_sharpness=-.inf", "must be a finite number"),
        ("filter.min_height=", "filter.min_height needs a value"),
        ("filter.max_camera_zoom=null", "filter.max_camera_zoom needs a value"),
        ("encode.codec=''", "encode.codec needs a value"),
        ("flickr.licenses=[]", "flickr.licenses needs a value"),
        ("filter.min_frames=[1, 2]", "expects a int"),
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


def test_a_recipe_of_nested_aliases_is_refused_at_once(tmp_path: Path) -> None:
    """A few lines of aliases would expand to billions of items once walked."""
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    lines += [f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}] " for i in range(8)]
    recipe = tmp_path / "bomb.yaml"
    recipe.write_text("\n".join(lines) + "\nfilter:\n  min_height: *i\n")
    with pytest.raises(ConfigError, match="aliases"):
        resolve_config(source="local", recipe=recipe)


def test_a_recipe_larger_than_the_bound_is_refused(tmp_path: Path) -> None:
    recipe = tmp_path / "big.yaml"
    recipe.write_text("filter:\n  min_height: 240\n" + "# padding\n" * 10_000)
    with pytest.raises(ConfigError, match="larger than 64 KiB"):
        resolve_config(source="local", recipe=recipe)


def test_null_in_a_recipe_fails_at_start(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("filter:\n  min_sharpness:\n")
    with pytest.raises(ConfigError, match="filter.min_sharpness needs a value"):
        resolve_config(source="local", recipe=recipe)


def test_optional_keys_still_take_null_and_empty() -> None:
    config = resolve_config(
        source="local", overrides=parse_set(["download.format=null", "flickr.tags=[]"])
    )
    assert config.download.format is None and config.flickr.tags == []
