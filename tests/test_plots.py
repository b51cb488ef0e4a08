"""dcgan.core.plots: every figure is a PNG published whole, from tiny inputs, without temporaries."""

import subprocess
import sys

import numpy as np
from PIL import Image

from dcgan.core import plots
from dcgan.evaluation.metrics import power_spectrum, radial_profile


def opened(path):
    """(width, height) of a PNG that PIL reads back completely."""
    with Image.open(path) as img:
        assert img.format == "PNG"
        img.load()
        return img.size


def only(folder, *names):
    """Nothing but the published files: no temporary name left beside them."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


def tiny_images(n=4, size=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 1), dtype=np.uint8)


def test_loss_plot(tmp_path):
    records = [{"step": s, "d_loss": 1.0 / s, "g_loss": 2.0 / s} for s in (1, 2, 3)] + [{"step": 3, "eval": {"fid": 1.0}}]
    path = plots.plot_losses(tmp_path / "losses.png", records)
    assert path == tmp_path / "losses.png"
    w, h = opened(path)
    assert w > 0 and h > 0
    only(tmp_path, "losses.png")
    # D's overfitting signals, where logged, get a panel of their own beneath the losses
    signalled = [{**r, "d_real_sign": 0.1 * r["step"], "d_gap": 0.01 * r["step"]} for r in records[:3]]
    tall = opened(plots.plot_losses(tmp_path / "signals.png", signalled))
    assert tall[0] == w and tall[1] > 1.5 * h


def test_metric_curve_has_one_panel_per_metric(tmp_path):
    records = [{"metric": m, "checkpoint_step": s, "value": v}
               for s in (10, 20) for m, v in (("fid", 100.0 / s), ("kid", 0.5 / s), ("checkerboard", 1.0))]
    one = plots.plot_curve(tmp_path / "one.png", records[:1] + records[3:4])
    three = plots.plot_curve(tmp_path / "three.png", records)
    assert opened(three)[0] > 2 * opened(one)[0] > 0
    only(tmp_path, "one.png", "three.png")


def test_spectra_of_several_labelled_sets(tmp_path):
    profiles = {label: radial_profile(power_spectrum(tiny_images(seed=i)))
                for i, label in enumerate(("real", "transpose", "upsample", "subpixel"))}
    path = plots.plot_spectra(tmp_path / "spectra.png", profiles, 8, "power spectra", reference="real")
    w, h = opened(path)
    assert w > 0 and h > 0
    two = plots.plot_spectra(tmp_path / "two.png", {k: profiles[k] for k in ("real", "transpose")}, 8, "two sets")
    assert opened(two) == (w, h)  # the same frame, whatever the number of lines
    only(tmp_path, "spectra.png", "two.png")


def test_spectra_accept_profiles_as_lists(tmp_path):
    """compare's results hold the profiles as JSON lists."""
    profile = radial_profile(power_spectrum(tiny_images())).tolist()
    opened(plots.plot_spectra(tmp_path / "s.png", {"real": profile, "generated": profile}, 8, "lists"))


def test_sample_panels_four_a_row(tmp_path):
    one = opened(plots.plot_panels(tmp_path / "one.png", {"transpose": tiny_images()}, 2, 2))
    five = opened(plots.plot_panels(tmp_path / "five.png", {f"mode{i}": tiny_images(seed=i) for i in range(5)}, 2, 2))
    assert one[0] > 0 and one[1] > 0
    assert five == (4 * one[0], 2 * one[1])  # four panels in the first row, the fifth below
    only(tmp_path, "one.png", "five.png")


def test_fid_curves_of_runs(tmp_path):
    curves = {"transpose": [[{"step": 2, "fid": 300.0}, {"step": 4, "fid": 20.0}], [{"step": 2, "fid": 250.0}]],
              "upsample": [[{"step": 2, "fid": 200.0}, {"step": 4, "fid": 30.0}]]}
    w, h = opened(plots.plot_fid(tmp_path / "fid.png", curves))
    assert w > 0 and h > 0
    only(tmp_path, "fid.png")


def test_importing_plots_loads_no_matplotlib_or_tensorflow():
    code = "import sys, dcgan.core.plots; print('matplotlib' in sys.modules, 'tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
