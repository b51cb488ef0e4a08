import time
from pathlib import Path

import pytest
import yaml

from helpers import one_line_config_error
from dcgan.core.config import (
    Config, ConfigError, apply_overrides, block_modes, diff_keys, dump_config, from_dict, is_conditional, load_config,
    reference_markdown, to_dict, upsampling_plan,
)
from dcgan.core.yamlio import load_yaml


def test_defaults_cover_every_key_and_round_trip():
    cfg = load_config()
    assert cfg == Config()
    assert from_dict(yaml.safe_load(dump_config(cfg))) == cfg


def test_yaml_file_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {name: mnist, batch_size: 32}\ntrain: {steps: 100, lr_g: 1e-4}\n")
    cfg = load_config(path, ["train.steps=7", "model.generator.upsampling=subpixel", "data.limit=null"])
    assert (cfg.data.name, cfg.data.batch_size, cfg.train.steps) == ("mnist", 32, 7)
    assert cfg.train.lr_g == pytest.approx(1e-4)  # YAML 1.1 reads 1e-4 as a string; it is coerced
    assert cfg.model.generator.upsampling == "subpixel"
    assert cfg.data.limit is None


def test_mode_list_from_command_line():
    assert load_config(None, ["model.generator.antialias=false,true"]).model.generator.antialias == [False, True]
    assert load_config(None, ["model.generator.antialias=true"]).model.generator.antialias is True
    cfg = load_config(None, ["model.generator.upsampling=transpose,upsample"])
    assert cfg.model.generator.upsampling == ["transpose", "upsample"]
    assert block_modes(cfg.model.generator, 2) == ["transpose", "upsample"]


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.stesp=3", "unknown config key 'train.stesp'; did you mean 'train.steps'?"),
        ("modle.generator.latent_dim=3", "unknown config key 'modle'; did you mean 'model'?"),
        ("train.lr_g=fast", "train.lr_g: 'fast' is not a valid float"),
        ("train.steps=0", "train.steps: 0 is below the minimum 1"),
        ("train.steps=2.5", "train.steps: 2.5 is not a valid int"),
        ("data.name=imagenet", "data.name: 'imagenet' is not allowed; choose one of mnist | fashion_mnist | cifar10 | folder | prepared"),
        ("model.generator.upsampling=pixelshuffle", "model.generator.upsampling: 'pixelshuffle' is not allowed"),
        ("model.generator.upsampling=transpose,upsample,subpixel", "3 modes given but image_size 28 needs 2"),
        ("data.image_size=30", "data.image_size: 30 is not supported"),
        ("model.generator.antialias=true,false,true", "model.generator.antialias: 3 values given but image_size 28 needs 2"),
        ("model.generator.antialias=maybe,true", "model.generator.antialias[0]: 'maybe' is not a valid bool"),
        ("model.discriminator.downsampling=maxpool", "model.discriminator.downsampling: 'maxpool' is not allowed; "
                                                     "choose one of strided | avgpool | blurpool"),
        ("data.channels=3", "data.channels: fashion_mnist is grayscale"),
        ("train.label_smoothing=0.9", "train.label_smoothing: 0.9 is above the maximum 0.5"),
        ("train.deterministic=maybe", "train.deterministic: 'maybe' is not a valid bool"),
        ("train.ema_decay=.nan", "train.ema_decay: nan is not a finite number"),
        ("train.steps", "expected dotted.key=value"),
        ("train=3", "train: expected a mapping"),
        ("train.steps.x=1", "train.steps: {'x': 1} is not a valid int"),
        ("train.augment=translation,flip", "train.augment[1]: 'flip' is not allowed; choose one of translation | cutout | color"),
        ("train.augment=cutout,cutout", "train.augment: 'cutout' is listed twice"),
        ("train.augment=3", "train.augment: expected a list, got 3"),
        ("train.r1_gamma=-1", "train.r1_gamma: -1.0 is below the minimum 0.0"),
        ("train.spectral_weight=-0.5", "train.spectral_weight: -0.5 is below the minimum 0.0"),
        ("train.ada_target=1", "train.ada_target: 1.0 is not allowed; it must be above 0 and below 1"),
        ("train.ada_target=0", "train.ada_target: 0.0 is not allowed; it must be above 0 and below 1"),
        ("train.ada_target=-0.5", "train.ada_target: -0.5 is not allowed; it must be above 0 and below 1"),
        ("train.ada_interval=0", "train.ada_interval: 0 is below the minimum 1"),
        ("train.r1_every=0", "train.r1_every: 0 is below the minimum 1"),
    ],
)
def test_errors_name_key_value_and_what_is_allowed(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_augment_list_from_command_line_or_yaml():
    assert load_config(None, ["train.augment=translation,cutout"]).train.augment == ["translation", "cutout"]
    assert load_config(None, ["train.augment=color"]).train.augment == ["color"]  # one op is a list too
    assert load_config(None, ["train.augment=[cutout, color]"]).train.augment == ["cutout", "color"]
    assert load_config(None, ["train.augment=[]"]).train.augment == [] == load_config().train.augment  # off
    assert from_dict({"train": {"augment": ["translation"], "ada_target": 0.6}}).train.ada_target == 0.6


def test_r1_refuses_batch_norm_in_the_discriminator():
    text = one_line_config_error(load_config, None, ["train.r1_gamma=1", "model.discriminator.norm=batch"])
    assert text.startswith("train.r1_gamma: R1 penalises each real image's own gradient")
    assert load_config(None, ["train.r1_gamma=1", "model.discriminator.norm=layer"]).train.r1_gamma == 1.0


def test_steps_and_epochs_cannot_both_be_null():
    with pytest.raises(ConfigError, match="train.steps and train.epochs are both null"):
        load_config(None, ["train.steps=null"])
    assert load_config(None, ["train.steps=null", "train.epochs=2"]).train.epochs == 2


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {steps: [1, 2\n")
    with pytest.raises(ConfigError, match=r"invalid YAML in .*bad.yaml \(line \d+, column \d+\)"):
        load_config(bad)
    hostile = tmp_path / "hostile.yaml"
    hostile.write_text("train: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(hostile)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(listy)


@pytest.mark.parametrize("size, plan", [(28, (7, 2)), (32, (4, 3)), (64, (4, 4)), (48, (6, 3)), (128, (4, 5))])
def test_upsampling_plan(size, plan):
    assert upsampling_plan(size) == plan


def test_diff_keys_and_reference():
    a, b = to_dict(Config()), apply_overrides(to_dict(Config()), ["model.generator.norm=none", "train.steps=5"])
    assert diff_keys(a, b) == ["model.generator.norm", "train.steps"]
    ref = reference_markdown()
    for key in ("data.name", "model.generator.upsampling", "model.discriminator.spectral_norm", "train.ema_decay", "run.dir"):
        assert f"`{key}`" in ref


@pytest.mark.parametrize("name", ["fashion_mnist", "mnist", "cifar10", "smoke", "folder_small", "fashion_mnist_conditional",
                                  "mnist_conditional", "cifar10_conditional", "fashion_mnist_4500steps", "fashion_mnist_30min"])
def test_shipped_configs_load(name):
    from pathlib import Path

    cfg = load_config(Path(__file__).parent.parent / "configs" / f"{name}.yaml")
    assert cfg.data.channels == (3 if name.startswith(("cifar10", "folder_small")) else 1)
    assert is_conditional(cfg) == name.endswith("_conditional")


def test_shipped_configs_match_the_built_in_defaults():
    """`dcgan train` without --config trains configs/fashion_mnist.yaml; mnist.yaml differs only in the dataset."""
    configs = Path(__file__).resolve().parent.parent / "configs"
    built_in = to_dict(load_config(None))
    assert to_dict(load_config(configs / "fashion_mnist.yaml")) == built_in
    assert diff_keys(built_in, to_dict(load_config(configs / "mnist.yaml"))) == ["data.name"]
    assert diff_keys(built_in, to_dict(load_config(configs / "fashion_mnist_4500steps.yaml"))) == ["train.steps"]
    assert diff_keys(built_in, to_dict(load_config(configs / "fashion_mnist_30min.yaml"))) == ["train.steps", "train.time_budget_s"]
    # the conditional configs are their unconditional ones plus the two conditioning methods (and the steps measured)
    condition = ["model.discriminator.condition", "model.generator.condition"]
    for name, steps in (("fashion_mnist", ["train.steps"]), ("mnist", ["train.steps"]), ("cifar10", [])):
        plain, cond = (to_dict(load_config(configs / f"{name}{suffix}.yaml")) for suffix in ("", "_conditional"))
        assert diff_keys(plain, cond) == condition + steps, name


def test_conditioning_both_networks_or_neither_and_cbn_needs_batch_norm():
    text = one_line_config_error(load_config, None, ["model.generator.condition=cbn"])
    assert text == ("model.discriminator.condition: the generator is conditioned (generator.condition=cbn); "
                    "condition both networks or neither")
    text = one_line_config_error(load_config, None, ["model.discriminator.condition=projection"])
    assert text.startswith("model.generator.condition: the discriminator is conditioned (discriminator.condition=projection)")
    text = one_line_config_error(load_config, None, ["model.generator.condition=cbn", "model.discriminator.condition=concat",
                                                     "model.generator.norm=none"])
    assert text == "model.generator.condition: cbn conditions the BatchNorm layers; set model.generator.norm=batch"
    text = one_line_config_error(load_config, None, ["model.generator.condition=film"])
    assert "choose one of none | concat | cbn" in text
    cfg = load_config(None, ["model.generator.condition=concat", "model.discriminator.condition=concat", "model.generator.norm=none"])
    assert is_conditional(cfg) and not is_conditional(load_config(None))


# ---------------------------------------------------------------- hostile values: short, one-line errors


def test_float_fields_take_exponents_and_dotless_decimals():
    t = load_config(None, ["train.lr_g=1e-4", "train.lr_d=2e-4", "train.beta1=.5", "train.steps=1_000",
                           "train.seed=+5"]).train
    assert (t.lr_g, t.lr_d, t.beta1, t.steps, t.seed) == (pytest.approx(1e-4), pytest.approx(2e-4), 0.5, 1000, 5)


@pytest.mark.parametrize("name, problem", [
    ("a\nb", "'a\\nb' contains a non-printable character"),
    ("a\tb", "contains a non-printable character"),
    ("\x1b[31mred", "contains a non-printable character"),  # a terminal escape in every log line
    ("\u2028", "contains a non-printable character"),  # a Unicode line separator
    ("\ud800", "cannot be encoded as a file name"),  # a lone surrogate (a "\ud800" escape in YAML)
    ("x" * 256, "is 256 bytes in UTF-8; a directory name has at most 255"),
    ("\u00e9" * 128, "is 256 bytes in UTF-8"),  # 128 characters, 2 bytes each
    ("a/b", "must be a plain directory name"), (".", "must be a plain directory name"),
    ("..", "must be a plain directory name"),
])
def test_run_name_is_one_printable_directory_name_of_at_most_255_bytes(name, problem):
    assert problem in one_line_config_error(from_dict, {"run": {"name": name}})


def test_run_name_at_the_limits_and_number_like_names_are_accepted_and_round_trip():
    for name in ("x" * 255, "\u00e9" * 127, "run 1 (copy)", "\u65e5\u672c", "017", "0x10", "190:20:30", "1e-4", "1_000"):
        cfg = from_dict({"run": {"name": name}})
        assert cfg.run.name == name
        assert from_dict(load_yaml(dump_config(cfg))) == cfg  # how a run directory's config.yaml is read back


def test_huge_deep_and_odd_values_give_short_errors_fast():
    deep = []
    for _ in range(100_000):  # repr() of it raises RecursionError
        deep = [deep]
    start = time.perf_counter()
    assert "train.steps: [[[[" in one_line_config_error(from_dict, {"train": {"steps": deep}})
    assert "train.steps: [[], [], " in one_line_config_error(from_dict, {"train": {"steps": [[]] * 10**7}})
    assert "train.seed: <a 5001-digit integer> is" in one_line_config_error(from_dict, {"train": {"seed": 10**5000}})
    assert "is out of range (at most 9223372036854775807)" in one_line_config_error(from_dict, {"train": {"steps": 2**63}})
    assert "a string of 5000 characters is too long" in one_line_config_error(from_dict, {"data": {"path": "x" * 5000}})
    assert "data.path: '\\udfff' cannot be encoded" in one_line_config_error(from_dict, {"data": {"path": "\udfff"}})
    assert "unknown config key 'train.xxxxxx" in one_line_config_error(from_dict, {"train": {"x" * 10**7: 1}})
    assert time.perf_counter() - start < 1.0
