"""Config system: dataclass defaults <- recipe YAML <- profile <- dotted overrides; clear errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from pretrainlab.core.builtin.api import SPEC
from pretrainlab.core.builtin.config import SimCLRConfig
from pretrainlab.core.config import (
    ConfigError,
    TrainConfig,
    from_dict,
    load_config,
    parse_overrides,
    save_config,
    to_dict,
    validate,
)

RECIPES = SPEC.recipes


def test_layers_apply_in_order(tmp_path: Path) -> None:
    cfg = load_config(SimCLRConfig, "simclr", recipes_dir=RECIPES, profile="smoke",
                      overrides=["train.lr=1e-3", "model.width=8", "train.betas=[0.8,0.9]"])
    assert cfg.train.max_steps == 4  # profile
    assert cfg.loss.temperature == 0.5  # recipe
    assert cfg.train.lr == 1e-3 and cfg.model.width == 8  # overrides beat the profile / recipe
    assert cfg.train.betas == (0.8, 0.9)
    assert cfg.model.feat_dim == 128  # dataclass default


def test_unknown_key_suggests_nearest() -> None:
    with pytest.raises(ConfigError, match=r"unknown config key 'train.lrr'.*did you mean 'train.lr'"):
        load_config(SimCLRConfig, "simclr", recipes_dir=RECIPES, overrides=["train.lrr=0.1"])
    with pytest.raises(ConfigError, match="did you mean 'loss.temperature'"):
        load_config(SimCLRConfig, "simclr", recipes_dir=RECIPES, overrides=["loss.temprature=0.1"])


@pytest.mark.parametrize("override,match", [
    ("train.max_steps=abc", "expected an integer"),
    ("train.deterministic=maybe", "expected true/false"),
    ("train.lr", "key=value"),
    ("=3", "empty key"),
    ("train.betas=[1,2,3]", "expected 2 items"),
])
def test_bad_values_are_clear(override: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(SimCLRConfig, None, overrides=[override])


def test_unknown_profile_and_recipe() -> None:
    with pytest.raises(ConfigError, match="did you mean 'tiny'"):
        load_config(SimCLRConfig, "simclr", recipes_dir=RECIPES, profile="tinyy")
    with pytest.raises(ConfigError, match="did you mean 'simclr'"):
        load_config(SimCLRConfig, "simclrr", recipes_dir=RECIPES)


def test_bad_yaml_names_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match=str(bad)):
        load_config(SimCLRConfig, bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(SimCLRConfig, lst)
    with pytest.raises(ConfigError, match="not found"):
        load_config(SimCLRConfig, tmp_path / "missing.yaml", recipes_dir=RECIPES)


def test_saved_config_round_trips(tmp_path: Path) -> None:
    cfg = load_config(SimCLRConfig, "simclr", recipes_dir=RECIPES, profile="tiny", overrides=["train.seed=7"])
    save_config(cfg, tmp_path / "c.yaml")
    again = from_dict(SimCLRConfig, yaml.safe_load((tmp_path / "c.yaml").read_text()))
    assert again == cfg and to_dict(again)["train"]["seed"] == 7


def test_parse_overrides_yaml_scalars() -> None:
    assert parse_overrides(["a=0.5", "b=true", "c=[1, 2]", "d=hello", "e="]) == {
        "a": 0.5, "b": True, "c": [1, 2], "d": "hello", "e": ""}
    # YAML 1.1 reads 1e-3 as a string; float fields still accept it
    assert load_config(SimCLRConfig, None, overrides=["train.lr=1e-3"]).train.lr == 1e-3


def test_every_builtin_profile_loads() -> None:
    for profile in ("smoke", "tiny", "full"):
        cfg = load_config(SimCLRConfig, "simclr", recipes_dir=RECIPES, profile=profile)
        assert dataclasses.is_dataclass(cfg) and isinstance(cfg.train, TrainConfig)


@pytest.mark.parametrize("override, key", [
    ("train.batch_size=0", "train.batch_size"), ("train.lr=nan", "train.lr"), ("train.lr=-1", "train.lr"),
    ("train.lr=.nan", "train.lr"), ("train.max_steps=0", "train.max_steps"), ("train.schedule=cosin", "train.schedule"),
    ("train.optimizer=adamx", "train.optimizer"), ("train.betas=[0.9,1.5]", "train.betas[1]"),
    ("train.grad_accum=0", "train.grad_accum"), ("train.device=gpu", "train.device"),
    ("train.nesterov=true", "train.nesterov"), ("loss.temperature=0", "loss.temperature"),
    ("model.width=0", "model.width"), ("data.profile=huge", "data.profile"),
])
def test_bad_values_are_refused_naming_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(SimCLRConfig, "simclr", recipes_dir=RECIPES, profile="smoke", overrides=[override])
    msg = str(e.value)
    assert msg.startswith(key + ":"), msg
    assert "\n" not in msg


def test_choices_suggest_the_nearest() -> None:
    with pytest.raises(ConfigError, match=r"train.schedule: 'cosin' is not allowed \(did you mean 'cosine'\?\); allowed: cosine"):
        load_config(SimCLRConfig, None, overrides=["train.schedule=cosin"])


def test_validate_cross_field_and_unknown_checks() -> None:
    @dataclasses.dataclass
    class Enc:
        hidden: int = 64
        heads: int = 4
        CHECKS = {"hidden": ">=1", "heads": ">=1"}  # noqa: RUF012 - class-level spec, not a field

        def check(self) -> None:
            if self.hidden % self.heads:
                raise ConfigError(f"heads: {self.hidden} hidden units do not split into {self.heads} heads")

    @dataclasses.dataclass
    class Top:
        model: Enc = dataclasses.field(default_factory=Enc)

    validate(Top())
    with pytest.raises(ConfigError, match=r"^model\.heads: 64 hidden units do not split into 5 heads"):
        validate(Top(Enc(64, 5)))

    @dataclasses.dataclass
    class Broken:
        a: int = 1
        CHECKS = {"b": ">=1"}  # noqa: RUF012

    with pytest.raises(TypeError, match="unknown fields"):
        validate(Broken())


def test_extends_layers_a_base_recipe(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("train: {lr: 0.5, max_steps: 7}\nprofiles: {smoke: {train.batch_size: 3}}\n")
    (tmp_path / "child.yaml").write_text("extends: base\ntrain: {lr: 0.25}\nprofiles: {smoke: {train.max_steps: 2}}\n")
    cfg = load_config(SimCLRConfig, "child", recipes_dir=tmp_path, profile="smoke")
    assert (cfg.train.lr, cfg.train.max_steps, cfg.train.batch_size) == (0.25, 2, 3)
    (tmp_path / "loop.yaml").write_text("extends: loop\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(SimCLRConfig, "loop", recipes_dir=tmp_path)
