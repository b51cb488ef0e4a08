"""Walks as video (`--out walk.mp4`) and grids of walks played side by side (`--grid RxC` with a .gif or .mp4)."""

import numpy as np
import pytest
from PIL import Image

from dcgan.api import load
from dcgan.core.video import MIN_SIDE, count_frames, video_frames
from dcgan.tools.latents import latents, walk
from helpers import cli_error, run_cli


def test_a_walk_video_decodes_to_every_frame(tiny_run, tmp_path, capsys):
    run_dir, _ = tiny_run
    out = tmp_path / "walk.mp4"
    status, said, err = run_cli(capsys, "sample", run_dir, "--interpolate", 3, "--frames", 4, "--out", out)
    assert status == 0, err
    assert count_frames(out) == 3 * 4 + 1 and "13 images" in said
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_a_grid_of_walks_plays_each_cell_s_own_seeds(tiny_run, tmp_path, capsys):
    run_dir, cfg = tiny_run
    gif, mp4 = tmp_path / "walks.gif", tmp_path / "walks.mp4"
    for out in (gif, mp4):
        status, _, err = run_cli(capsys, "sample", run_dir, "--interpolate", 1, "--frames", 3, "--grid", "2x3",
                                 "--seeds", "0-11", "--out", out)
        assert status == 0, err
    assert count_frames(mp4) == 4
    with Image.open(gif) as img:
        frames = []
        for i in range(img.n_frames):
            img.seek(i)
            frames.append(np.asarray(img.convert("L")))
    size = cfg.data.image_size
    assert len(frames) == 4 and frames[0].shape == (2 * (size + 2) + 2, 3 * (size + 2) + 2)
    # cell (1, 2), the sixth, walks seeds 10 -> 11: its last frame is seed 11's image
    g = load(run_dir)
    expected = g.generate(walk(latents([10, 11], cfg.model.generator.latent_dim), 3))
    y, x = 2 + 1 * (size + 2), 2 + 2 * (size + 2)
    np.testing.assert_array_equal(frames[-1][y : y + size, x : x + size], expected[-1, ..., 0])


def test_video_frames_are_rgb_enlarged_and_even():
    frames = video_frames(np.zeros((2, 27, 13, 1), np.uint8))
    assert frames.shape[-1] == 3 and min(frames.shape[1:3]) >= MIN_SIDE and frames.shape[1] % 2 == frames.shape[2] % 2 == 0


@pytest.mark.parametrize("args, message", [
    (["--out", "x.mp4"], "is written for --interpolate only"),
    (["--interpolate", 1, "--grid", "2x2", "--seeds", "0-4", "--out", "x.mp4"], "in each of 4 cells (8 in all), got 5"),
    (["--interpolate", 1, "--grid", "2x2", "--out", "x.png"], "--grid applies to a grid PNG"),
])
def test_bad_video_requests_are_one_line(tiny_run, tmp_path, capsys, args, message):
    assert message in cli_error(capsys, "sample", tiny_run[0], *[str(tmp_path / a) if str(a).startswith("x.") else a
                                                                 for a in args])


def test_a_conditional_walk_video_stays_in_its_class(tiny_conditional_run, tmp_path, capsys):
    run_dir, _ = tiny_conditional_run
    out = tmp_path / "bags.mp4"
    status, said, err = run_cli(capsys, "sample", run_dir, "--class", "bag", "--interpolate", 2, "--frames", 2,
                                "--out", out)
    assert status == 0 and "of class Bag" in said, err
    assert count_frames(out) == 5
