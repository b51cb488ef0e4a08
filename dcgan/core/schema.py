"""The configuration's schema: every section as a dataclass, every key with its default, help and rules.

dcgan.core.config reads, validates and writes configs of this shape (and re-exports these names); the config
reference in docs/config.md is generated from the help texts (`python scripts/update_docs.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from dcgan.core.upsampling import INTERPOLATIONS, UPSAMPLING_MODES

LOSSES = ("bce", "hinge", "lsgan")
STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
G_CONDITIONS = ("none", "concat", "cbn")
D_CONDITIONS = ("none", "projection", "concat")
AUGMENT_OPS = ("translation", "cutout", "color")  # dcgan.models.augment.OPS (this module imports no TensorFlow)
FITS = ("center", "center-wide", "pad", "stretch", "random")  # dcgan.data.fit
RESIZE_FILTERS = ("area", "box", "bilinear", "bicubic", "lanczos3")
FEATURE_NETWORKS = ("auto", "classifier", "inception", "selfsup")  # dcgan.evaluation.features.feature_net_for


# ---------------------------------------------------------------- what validation knows of each dataset


@dataclass(frozen=True)
class DatasetFacts:
    """What config validation checks of a dataset; its source (dcgan.data.sources) reads the files and knows the rest.

    The built-in datasets are declared here, so a config is checked before any data module is imported; a source
    registered later (`dcgan.data.sources.register`) declares its own with `declare_dataset`.
    """

    channels: int | None = None  # the only data.channels it takes (None: any; images are converted)
    path: str | None = None  # what data.path must name, when the dataset needs one (None: optional)
    holdout: bool = False  # takes data.holdout: keeps part of its images out of training (an image folder)
    test_split: bool = False  # has a test split beside train: the held-out images of d_gap, evaluation's reference
    classifier: bool = False  # its FID features can come from its own classifier (train.feature_network: auto)
    decodes: bool = False  # decodes pictures of any shape: takes data.fit, data.resize, data.pad and data.labels


DATASET_FACTS: dict[str, DatasetFacts] = {
    "mnist": DatasetFacts(channels=1, test_split=True, classifier=True),
    "fashion_mnist": DatasetFacts(channels=1, test_split=True, classifier=True),
    "cifar10": DatasetFacts(channels=3, test_split=True),
    "folder": DatasetFacts(path="a path to a directory of images, or a .zip/.tar/.tar.gz of them", holdout=True,
                           decodes=True),
    "prepared": DatasetFacts(path="the path of the folder `dcgan prepare` wrote"),
}
BUILTIN_DATASETS = tuple(DATASET_FACTS)


def dataset_names() -> tuple[str, ...]:
    """Every name data.name takes: the built-in datasets, then those registered since."""
    return tuple(DATASET_FACTS)


def declare_dataset(name: str, facts: DatasetFacts) -> None:
    """Make data.name accept a newly registered dataset (its source module calls this through `register`)."""
    if name in DATASET_FACTS and DATASET_FACTS[name] != facts:
        raise ValueError(f"dataset {name!r} is declared already, with other facts")
    DATASET_FACTS[name] = facts


def classifier_datasets() -> tuple[str, ...]:
    """The datasets whose FID features can come from their own classifier."""
    return tuple(name for name, facts in DATASET_FACTS.items() if facts.classifier)


def _f(default, help, **rules):
    """A config field: its default, one line of help, and validation rules."""
    kwargs = {"default_factory": lambda: list(default)} if isinstance(default, list) else {"default": default}
    return field(metadata={"help": help, **rules}, **kwargs)


@dataclass
class DataConfig:
    name: str = _f("fashion_mnist", "dataset", choices=dataset_names)
    path: Union[str, None] = _f(None, "local files: mnist.npz or IDX folder, cifar-10-batches-py or its tar.gz, image folder, "
                                  "or the folder `dcgan prepare` wrote (data.name: prepared)")
    split: str = _f("train", "which split to train on", choices=("train", "test"))
    image_size: int = _f(28, "output side in pixels; must be s*2^k with 4 <= s <= 8", min=8, max=1024)
    channels: int = _f(1, "1 (grayscale) or 3 (RGB)", choices=(1, 3))
    batch_size: int = _f(64, "global batch size", min=1, max=65536)
    limit: Union[int, None] = _f(None, "use only the first N images (null = all)", min=1)
    holdout: int = _f(0, "image folders: keep N of the images (spread evenly over the sorted listing) out of training, "
                      "as D's unseen images for the held-out gap d_gap (train.heldout_probe); other datasets use their "
                      "test split (0 = none)", min=0)
    fit: str = _f("center", "image folders: how a picture becomes square: center (shorter side resized, centre cut) | "
                  "center-wide (a 2:1 band on a square canvas, for landscapes) | pad (the whole picture, letterboxed "
                  "with data.pad) | stretch | random (a random square window each epoch, training only; evaluation "
                  "sees the centre)", choices=FITS)
    resize: str = _f("area", "image folders: the resize filter, anti-aliased when shrinking", choices=RESIZE_FILTERS)
    pad: str = _f("white", "image folders, fit: pad and center-wide: the letterbox: white | black | edge (border "
                  "pixels repeated) | a #rrggbb colour (quoted in YAML: '#rrggbb')")
    labels: Union[str, None] = _f(None, "image folders, conditional runs: a label file, dataset.json "
                                  "({\"labels\": [[\"path\", class], ...]}, StyleGAN2-ADA's) or a CSV with a header "
                                  "(path, class name), inside data.path or absolute (null = the immediate subfolders)")


@dataclass
class GeneratorConfig:
    arch: str = _f("dcgan", "architecture, by the name its builder is registered under (dcgan.models.registry); "
                   "dcgan: the projection, x2 upsampling blocks and tanh convolution described below")
    latent_dim: int = _f(100, "size of the latent vector z", min=1, max=4096)
    base_channels: int = _f(32, "channels of the last upsampling block; doubled per earlier block", min=1, max=4096)
    max_channels: int = _f(512, "cap on channels of any block", min=1, max=8192)
    upsampling: Union[str, list] = _f(
        "upsample",
        "transpose | upsample | subpixel, or a list with one mode per x2 block",
        choices=UPSAMPLING_MODES,
    )
    interpolation: str = _f("nearest", "resize used by `upsample` blocks", choices=INTERPOLATIONS)
    antialias: Union[bool, list] = _f(
        False, "low-pass each x2 block's output with the fixed [1,2,1] binomial filter before its norm (zero gain "
        "at N/2, where stride-2 ops leave checkerboards; Zhang 2019), or a list with one true/false per block",
        item=bool)
    kernel_size: int = _f(3, "kernel of each block's convolution", min=1, max=9)
    transpose_kernel_size: Union[int, None] = _f(
        None, "kernel of `transpose` blocks (null = kernel_size; 4 avoids uneven overlap)", min=1, max=9
    )
    norm: str = _f("batch", "normalisation after each block", choices=("batch", "none"))
    condition: str = _f(
        "none", "class conditioning: concat (a learned class embedding joins z; Mirza & Osindero 2014) | cbn "
        "(conditional BatchNorm: class-dependent gamma and beta in every norm; needs norm: batch) | none",
        choices=G_CONDITIONS)
    embed_dim: int = _f(32, "size of the class embedding that condition: concat joins to z", min=1, max=4096)


@dataclass
class DiscriminatorConfig:
    arch: str = _f("dcgan", "architecture, by the name its builder is registered under (dcgan.models.registry); "
                   "dcgan: strided convolutions halving the image to the generator's start size, then one logit")
    base_channels: int = _f(32, "channels of the first block; doubled per later block", min=1, max=4096)
    max_channels: int = _f(512, "cap on channels of any block", min=1, max=8192)
    kernel_size: int = _f(4, "kernel of each strided convolution", min=1, max=9)
    downsampling: str = _f(
        "strided", "how each block halves the image: strided (a stride-2 convolution) | avgpool (2x2 average pooling, "
        "then a convolution) | blurpool (the [1,2,1] low-pass, then the stride-2 convolution; Zhang 2019)",
        choices=("strided", "avgpool", "blurpool"))
    dropout: float = _f(0.0, "dropout after each block", min=0.0, max=0.95)
    norm: str = _f("none", "normalisation after each block but the first", choices=("batch", "layer", "none"))
    spectral_norm: bool = _f(False, "wrap every conv and dense layer in SpectralNormalization")
    minibatch_std: bool = _f(False, "append the batch's feature standard deviation as one map before the logit, so D "
                             "can see a batch of near-copies (ProGAN's minibatch stddev)")
    condition: str = _f(
        "none", "class conditioning: projection (logit + <embed(y), features>; Miyato & Koyama 2018) | concat "
        "(one-hot label maps join the image's channels, as keras-io's conditional GAN) | none; set with the "
        "generator's condition", choices=D_CONDITIONS)


@dataclass
class ModelConfig:
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)


@dataclass
class TrainConfig:
    steps: Union[int, None] = _f(9000, "generator steps to train for (null: use epochs)", min=1)
    epochs: Union[int, None] = _f(None, "epochs to train for, used when steps is null", min=1)
    lr_g: float = _f(2e-4, "generator Adam learning rate", min=0.0, max=1.0)
    lr_d: float = _f(2e-4, "discriminator Adam learning rate", min=0.0, max=1.0)
    beta1: float = _f(0.5, "Adam beta1", min=0.0, max=0.999999)
    beta2: float = _f(0.999, "Adam beta2", min=0.0, max=0.999999)
    loss: str = _f("bce", "bce (non-saturating) | hinge | lsgan", choices=LOSSES)
    label_smoothing: float = _f(0.0, "one-sided: real targets become 1 - s (bce, lsgan)", min=0.0, max=0.5)
    d_steps: int = _f(1, "discriminator updates per generator update", min=1, max=20)
    micro_batch: Union[int, None] = _f(
        None, "images per forward pass on each replica: every update's gradients are summed over batch/micro_batch "
        "passes run one after another, so the step holds the activations of micro_batch images, not of the batch "
        "(high resolution in less memory; BatchNorm then normalises each pass by its own statistics, and the spectral "
        "term is the mean of the passes' terms, as over replicas; null = the whole batch in one pass)", min=1, max=65536)
    augment: list = _f(
        [], "DiffAugment ops applied to real and generated images whenever D sees them: translation (up to 1/8 "
        "of the size, zero padding), cutout (a half-size square set to 0), color (brightness, saturation, contrast); "
        "[] = off (with ADA: all three)", choices=AUGMENT_OPS, empty=True, unique=True)
    ada_target: Union[float, None] = _f(
        None, "adaptive augmentation (ADA): each augment op is applied per image with probability p, raised while "
        "E[sign(D(real))] is above this target and lowered while below (e.g. 0.6; null = off, ops always applied)",
        gt=0.0, lt=1.0)
    ada_interval: int = _f(4, "ADA: steps between adjustments of p", min=1, max=100000)
    ada_speed: int = _f(
        100_000, "ADA: real images over which p can go from 0 to 1 (ADA's 500k is for long runs; 100k lets p move "
        "0 -> 1 in ~1,600 steps of 64, a third of the default run, 0.0026 per 4-step adjustment)", min=1)
    r1_gamma: float = _f(0.0, "R1 penalty gamma/2 * E[|grad_x D(x)|^2] on the real images D sees, after "
                         "augmentation (0 = off)", min=0.0, max=1e6)
    r1_every: int = _f(16, "R1 on every k-th step only, scaled by k (lazy regularisation, StyleGAN2's 16; "
                       "1 = every step)", min=1, max=10000)
    spectral_weight: float = _f(
        0.0, "weight of a spectral term in G's loss: mean squared difference of the batch-mean radial (azimuthally "
        "averaged) log power spectra of generated and real images (Durall et al. 2020, differentiable here), on the "
        "un-augmented images; costs one FFT of each batch per step (0 = off)", min=0.0, max=1e6)
    ema_decay: float = _f(0.995, "decay of the generator's moving average copy, which sampling uses unless select_sampler "
                          "finds the raw G better (0 = off)", min=0.0, max=0.99999)
    ema_warmup: int = _f(500, "steps over which the EMA decay ramps up from 0", min=0)
    select_sampler: bool = _f(
        True, "at the last step and each evaluation, sample from whichever of the EMA copy and the raw generator "
        "has the lower FID against the training images (needs a feature network)")
    select_samples: int = _f(5000, "generated (and training) images the sampler choice compares", min=16, max=100000)
    seed: int = _f(0, "seed for weights, data order and noise", min=0, max=2**31 - 1)
    deterministic: bool = _f(False, "enable TensorFlow op determinism (bitwise-reproducible, slower)")
    log_every: int = _f(50, "steps between metrics.jsonl lines", min=1)
    heldout_probe: int = _f(
        256, "at every log line, D's mean output on this many fixed training images and as many held-out ones "
        "(the other split of mnist, fashion_mnist, cifar10; an image folder's data.holdout): d_seen, d_unseen and "
        "their gap d_gap, which grows as D memorises its training set (0 = off)", min=0, max=10000)
    sample_every: int = _f(500, "steps between fixed-noise sample grids", min=1)
    checkpoint_every: int = _f(500, "steps between checkpoints", min=1)
    keep_checkpoints: int = _f(3, "how many recent checkpoints to keep", min=1, max=1000)
    sample_grid: int = _f(8, "the fixed-noise grid is N x N", min=1, max=32)
    on_nan: str = _f("stop", "stop | skip_step when a loss is not finite", choices=("stop", "skip_step"))
    eval_every: Union[int, None] = _f(
        None, "steps between evaluations (FID, KID, checkerboard) of the sampling generator; keeps the best checkpoint by FID (null = off)", min=1
    )
    eval_samples: int = _f(2000, "generated images per evaluation during training", min=16, max=100000)
    feature_network: str = _f(
        "auto", "the feature network of every FID/KID (evaluations, the sampler choice, `dcgan evaluate`, `dcgan "
        "compare`): classifier (the dataset's own classifier; mnist, fashion_mnist) | inception (InceptionV3 ImageNet "
        "weights, downloaded once) | selfsup (a self-supervised encoder trained on the dataset's own images, offline, "
        "cached) | auto (classifier where there is one, else inception where its weights are on disk, else selfsup)", choices=FEATURE_NETWORKS)
    mixed_precision: str = _f("none", "none | bfloat16 | float16 (GPU/TPU; float16 uses loss scaling)",
                              choices=("none", "bfloat16", "float16"))
    jit_compile: bool = _f(False, "compile the train step with XLA")
    time_budget_s: Union[float, None] = _f(None, "stop after this many seconds of training (null = no limit)", min=1.0)


@dataclass
class RunConfig:
    dir: str = _f("runs", "parent directory of run directories")
    name: Union[str, None] = _f(None, "run directory name (null = <dataset>-<upsampling>, numbered if taken)")


@dataclass
class DistributeConfig:
    strategy: str = _f("default", "default (one device) | mirrored (local GPUs) | multi_worker (TF_CONFIG) | tpu",
                       choices=STRATEGIES)
    devices: Union[list, None] = _f(None, "mirrored: devices to use, e.g. [/gpu:0, /gpu:1] (null = all local GPUs)")
    sync_batchnorm: bool = _f(True, "BatchNorm statistics over the global batch (true) or each replica's share (false)")
    tpu: Union[str, None] = _f(None, "tpu: TPU name or grpc:// address (null = $TPU_NAME, else the TPU VM's local TPU)")


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunConfig = field(default_factory=RunConfig)
    distribute: DistributeConfig = field(default_factory=DistributeConfig)
