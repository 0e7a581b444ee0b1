from pathlib import Path

import pytest
import yaml

from timelapse_d.config import (
    builtin_recipe,
    fingerprint,
    resolve_config,
    saved_build_config,
    valid_keys,
)
from timelapse_d.config_loader import parse_set
from timelapse_d.errors import ConfigError
from timelapse_d.fgla.config import load_fgla_config


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
        ("filter.min_height=tall", "expects an int"),
        ("novalue", "expects key=value"),
        # NaN, infinite and empty values (issue 14 item 4, issue 16 item 9)
        ("filter.max_camera_translation=.nan", "must be a finite number"),
        ("filter.max_camera_shake=.inf", "must be a finite number"),
        ("filter.min_sharpness=-.inf", "must be a finite number"),
        ("filter.min_height=", "filter.min_height needs a value"),
        ("filter.max_camera_zoom=null", "filter.max_camera_zoom needs a value"),
        ("encode.codec=''", "encode.codec needs a value"),
        ("flickr.licenses=[]", "flickr.licenses needs a value"),
        ("filter.min_frames=[1, 2]", "expects an int"),
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


@pytest.mark.parametrize(
    ("build_item", "train_item", "expected"),
    [
        ("filter.max_camera_translation=1e-3", "train.lr=1e-3", 1e-3),  # YAML reads 1e-3 as text
        ("filter.min_height=360.0", "train.batch_size=8.0", None),  # integral floats fit ints
        ("filter.min_sharpness=1", "loss.tv_weight=1", None),  # ints fit floats
    ],
)
def test_build_and_train_overrides_follow_one_rule(
    build_item: str, train_item: str, expected: float | None
) -> None:
    build = resolve_config(source="local", overrides=parse_set([build_item]))
    trained = load_fgla_config(overrides=parse_set([train_item]))
    for config, item in ((build, build_item), (trained, train_item)):
        key, _, raw = item.partition("=")
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        kind = type(getattr(getattr(type(config)(), section), name))
        assert type(value) is kind and value == (expected if expected else float(raw))


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("filter.min_height=360.5", "filter.min_height expects an int, got 360.5"),
        ("train.batch_size=8.5", "train.batch_size expects an int, got 8.5"),
        ("encode.stream_copy=1", "encode.stream_copy expects a bool"),
        ("train.tensorboard=1", "train.tensorboard expects a bool"),
        ("train.lr=.nan", "train.lr must be a finite number"),
        ("loss.tv_sigma=1e999", "loss.tv_sigma must be a finite number"),
        ("train.precision=", "train.precision needs a value"),
        ("train.bogus=1", "unknown FGLA config key 'train.bogus'"),
        ("train.lr.x=1", "train.lr is not a section"),
        (
            "model.generator.padding_mode=circular",
            "model.generator.padding_mode must be one of reflect, zeros, replicate, got 'circular'",
        ),
    ],
)
def test_build_and_train_refuse_what_does_not_fit_alike(item: str, message: str) -> None:
    overrides = parse_set([item])
    with pytest.raises(ConfigError, match=message):
        if item.startswith(("train.", "loss.", "model.")):
            load_fgla_config(overrides=overrides)
        else:
            resolve_config(source="local", overrides=overrides)


def test_precompute_settings_are_a_recipe_section_saved_with_the_build(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("precompute:\n  stride: 8\n  flow_backend: truth\n")
    config = resolve_config(
        source="synthetic", recipe=recipe, overrides=parse_set(["precompute.size=64.0"])
    )
    assert (config.precompute.stride, config.precompute.size) == (8, 64)
    assert config.precompute.flow_backend == "truth" and config.precompute.device == "cpu"
    out = tmp_path / "out"
    (out / "run").mkdir(parents=True)
    (out / "run" / "config.yaml").write_text(yaml.safe_dump(config.to_dict()))
    assert saved_build_config(out) == config
    with pytest.raises(ConfigError, match="unknown config key 'precompute.stirde'"):
        resolve_config(source="local", overrides={"precompute.stirde": 2})
