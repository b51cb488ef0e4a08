"""`dcgan sample` on a conditional run: --class by name or index, every output kind, and the errors."""

import shutil

import numpy as np
import pytest

from dcgan.tools import sample
from dcgan.core import viz
from dcgan.core.errors import DcganError
from dcgan.data.mnist import CLASS_NAMES
from dcgan.tools.sample import latents, parse_class_list, resolve_classes
from helpers import cli_error, run_sample, sample_npz as npz

SIZE = 28
NAMES = CLASS_NAMES["fashion_mnist"]  # tiny_conditional_run's classes
SNEAKER = NAMES.index("Sneaker")


@pytest.fixture(scope="module")
def reference(tiny_conditional_run, tmp_path_factory) -> dict:
    """Seeds 0..7 in every class (the default grid's cells), sampled once for the module."""
    return npz(tiny_conditional_run[0], tmp_path_factory.mktemp("ref"), "--classes", "all")


def cell(reference: dict, label: int, seed: int) -> np.ndarray:
    """The reference image of one class and seed."""
    return reference["images"][label * 8 + seed]


# ---------------------------------------------------------------- arguments


def test_class_lists_are_names_indices_and_ranges():
    assert parse_class_list("0-3,sneaker") == [(0, 3), "sneaker"]
    assert resolve_classes("0-2,bag, 7 ,SNEAKER", NAMES, "run") == [0, 1, 2, 8, 7, 7]  # order and repeats kept
    assert resolve_classes("t-shirt/top,ankle_boot,Ankle Boot", NAMES, "run") == [0, 9, 9]
    assert resolve_classes("all", NAMES, "run") == resolve_classes(None, NAMES, "run") == list(range(10))
    assert resolve_classes(None, None, "run") is None  # an unconditional run


@pytest.mark.parametrize("text, message", [
    ("", "an empty item"), ("1,,2", "an empty item"), ("sneaker,", "an empty item"), ("3-1", "range '3-1' runs backwards"),
])
def test_malformed_class_lists(text, message):
    with pytest.raises(DcganError, match=message):
        parse_class_list(text)


def test_unknown_or_out_of_range_classes_list_the_valid_ones():
    listing = "the classes are 0: T-shirt/top, 1: Trouser, 2: Pullover, 3: Dress, 4: Coat, 5: Sandal, 6: Shirt, " \
              "7: Sneaker, 8: Bag, 9: Ankle boot"
    with pytest.raises(DcganError, match=f"--class 'snekaer': unknown class 'snekaer'; {listing}$"):
        resolve_classes("snekaer", NAMES, "run")
    with pytest.raises(DcganError, match=f"--class '3-10': no class 10; {listing}$"):
        resolve_classes("3-10", NAMES, "run")
    with pytest.raises(DcganError, match="'a b' names classes 0, 1, give an index"):
        resolve_classes("a b", ["a_b", "A B", "c"], "run")
    many = [f"c{i}" for i in range(500)]
    with pytest.raises(DcganError, match=r"0: c0, .* 11: c11, \.\.\. 499: c499$"):
        resolve_classes("c500", many, "run")  # a folder dataset's hundreds of classes: the list is cut short


def test_layouts_with_classes():
    rows = sample.parse_request(classes=list(range(10)))  # several classes: one row each, seeds 0..7 across
    assert (rows.grid, rows.seeds, rows.generated()) == ((10, 8), list(range(8)), 80)
    one = sample.parse_request(classes=[7])  # one class: the unconditional run's 8x8 of seeds 0..63
    assert (one.grid, one.seeds, one.generated()) == ((8, 8), list(range(64)), 64)
    assert sample.parse_request(n=5, out="x.npz", classes=[1, 2, 3]).generated() == 15  # --n N: N per class
    assert sample.parse_request(seeds="4,2", classes=[0, 1]).grid == (2, 2)
    with pytest.raises(DcganError, match="--grid 2x4: a grid of 2 classes is one row per class"):
        sample.parse_request(grid="2x4", classes=[0, 1])
    with pytest.raises(DcganError, match="--interpolate walks within one class of a conditional run, not 10"):
        sample.parse_request(interpolate=2, classes=list(range(10)))
    with pytest.raises(DcganError, match="10 classes x 1,001 seeds: 10,010 images in one picture"):
        sample.parse_request(seeds="0-1000", classes=list(range(10)))


# ---------------------------------------------------------------- images


def test_npz_holds_every_class_of_every_seed_from_the_ema_generator(tiny_conditional_run, reference):
    from dcgan.training.checkpoints import find_checkpoint
    from dcgan.tools.handle import load_handle
    from dcgan.models.sampling import generate_images

    run_dir, cfg = tiny_conditional_run
    images = reference["images"]
    assert images.shape == (80, SIZE, SIZE, 1) and images.dtype == np.uint8
    np.testing.assert_array_equal(reference["labels"], np.repeat(np.arange(10), 8))
    np.testing.assert_array_equal(reference["seeds"], np.tile(np.arange(8), 10))
    assert reference["labels"].dtype == reference["seeds"].dtype == np.int64
    assert list(reference["classes"]) == NAMES and bool(reference["ema"])
    gen = load_handle(find_checkpoint(run_dir), ema=True)
    z = latents(range(8), cfg.model.generator.latent_dim)
    np.testing.assert_array_equal(images[SNEAKER * 8 :][:8], generate_images(gen.model, z, labels=[SNEAKER] * 8))


def test_same_seed_and_class_same_pixels_and_the_class_changes_the_image(tiny_conditional_run, reference, tmp_path):
    run_dir, _ = tiny_conditional_run
    picks = npz(run_dir, tmp_path, "--class", "SNEAKER,1", "--seeds", "5,0")
    np.testing.assert_array_equal(picks["labels"], [SNEAKER, SNEAKER, 1, 1])
    np.testing.assert_array_equal(picks["seeds"], [5, 0, 5, 0])
    for image, label, seed in zip(picks["images"], picks["labels"], picks["seeds"]):
        np.testing.assert_array_equal(image, cell(reference, label, seed))
    by_index = npz(run_dir, tmp_path, "--class", SNEAKER, "--n", 3)
    np.testing.assert_array_equal(by_index["images"], [cell(reference, SNEAKER, s) for s in range(3)])
    for seed in range(8):  # only the class input differs
        assert not np.array_equal(cell(reference, 0, seed), cell(reference, 1, seed))
        assert not np.array_equal(cell(reference, 0, seed), cell(reference, SNEAKER, seed))


def test_grid_of_all_classes_has_one_row_per_class(tiny_conditional_run, reference, tmp_path):
    run_dir = shutil.copytree(tiny_conditional_run[0], tmp_path / "run")  # the default grid goes into the run
    assert run_sample(run_dir, "--classes", "all", "--out", tmp_path / "all.png") == 0
    grid = viz.read_png(tmp_path / "all.png")
    assert grid.shape == (10 * (SIZE + 2) + 2, 8 * (SIZE + 2) + 2, 1)
    np.testing.assert_array_equal(grid, viz.image_grid(reference["images"], 10, 8))
    for label in (0, SNEAKER):  # row r is class r sampled alone, one column per seed
        assert run_sample(run_dir, "--class", label, "--seeds", "0-7", "--grid", "1x8", "--out", tmp_path / "row.png") == 0
        row = viz.read_png(tmp_path / "row.png")
        top = label * (SIZE + 2)
        np.testing.assert_array_equal(grid[top : top + SIZE + 4], row)
    assert run_sample(run_dir) == 0  # no --class on a conditional run: every class, as --classes all
    np.testing.assert_array_equal(viz.read_png(run_dir / "sample_grid.png"), grid)


def test_one_class_grid_lays_out_like_an_unconditional_run(tiny_conditional_run, reference, tmp_path):
    run_dir, _ = tiny_conditional_run
    assert run_sample(run_dir, "--class", "sneaker", "--grid", "2x3", "--out", tmp_path / "g.png") == 0
    expected = [cell(reference, SNEAKER, s) for s in range(6)]
    np.testing.assert_array_equal(viz.read_png(tmp_path / "g.png"), viz.image_grid(np.stack(expected), 2, 3))


def test_folder_names_carry_class_and_seed(tiny_conditional_run, reference, tmp_path):
    run_dir, _ = tiny_conditional_run
    assert run_sample(run_dir, "--class", "0,sneaker", "--seeds", "4,1", "--out", tmp_path / "picks") == 0
    names = sorted(p.name for p in (tmp_path / "picks").iterdir())
    assert names == ["class_00_seed_0001.png", "class_00_seed_0004.png", "class_07_seed_0001.png", "class_07_seed_0004.png"]
    for label in (0, SNEAKER):
        for seed in (1, 4):
            image = viz.read_png(tmp_path / "picks" / f"class_{label:02d}_seed_{seed:04d}.png")
            np.testing.assert_array_equal(image, cell(reference, label, seed))


def test_walk_within_one_class_ends_on_its_images(tiny_conditional_run, reference, tmp_path):
    run_dir, _ = tiny_conditional_run
    assert run_sample(run_dir, "--class", "trouser", "--seeds", "2,6", "--interpolate", 1, "--frames", 2,
                      "--out", tmp_path / "w.png") == 0
    strip = viz.read_png(tmp_path / "w.png")
    first, last = strip[2 : 2 + SIZE, 2 : 2 + SIZE], strip[2 : 2 + SIZE, -2 - SIZE : -2]
    np.testing.assert_array_equal(first, cell(reference, 1, 2))
    np.testing.assert_array_equal(last, cell(reference, 1, 6))


# ---------------------------------------------------------------- errors


def test_class_errors_are_one_line_and_exit_2(tiny_conditional_run, tiny_run, tmp_path, capsys):
    run_dir, _ = tiny_conditional_run
    assert "is an unconditional run; it has no classes" in cli_error(capsys, "sample", tiny_run[0], "--class", "0")
    assert "is an unconditional run" in cli_error(capsys, "sample", tiny_run[0], "--classes", "all")
    err = cli_error(capsys, "sample", run_dir, "--class", "boots")
    assert "unknown class 'boots'; the classes are 0: T-shirt/top" in err and err.endswith("9: Ankle boot")
    assert "no class 12; the classes are 0: T-shirt/top" in cli_error(capsys, "sample", run_dir, "--class", "3,12")
    # a malformed list fails before the run is even looked up
    assert "an empty item" in cli_error(capsys, "sample", tmp_path / "nope", "--class", "1,,2")
    assert "runs backwards" in cli_error(capsys, "sample", tmp_path / "nope", "--class", "5-2")
    assert "one row per class" in cli_error(capsys, "sample", run_dir, "--grid", "2x2", "--out", tmp_path / "g.png")
    assert "give --class with one name or index" in cli_error(capsys, "sample", run_dir, "--interpolate", 1,
                                                              "--out", tmp_path / "w.gif")
    assert not list(tmp_path.iterdir())
