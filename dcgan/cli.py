"""Command line: parse, then call one function. TensorFlow is imported only inside commands."""

from __future__ import annotations

import argparse
import os
import sys

from dcgan import __version__
from dcgan.errors import DcganError


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def cmd_train(args) -> int:
    from pathlib import Path

    from dcgan.config import load_config
    from dcgan.rundir import resume_config

    if args.resume:
        cfg, run_dir = resume_config(args.resume, args.config, args.set), Path(args.resume)
    else:
        cfg, run_dir = load_config(args.config, args.set), None
    _quiet_tensorflow()
    from dcgan.train import train

    print(train(cfg, resume_dir=run_dir, quiet=args.quiet))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dcgan", description="Train, sample, evaluate and compare DCGANs.")
    parser.add_argument("--version", action="version", version=f"dcgan {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("train", help="train from a YAML config (or resume a run)")
    p.add_argument("--config", "-c", help="YAML config file (default: built-in defaults = configs/fashion_mnist.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key, e.g. train.steps=500 (repeatable)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its latest checkpoint")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar; one log line per logged step")
    p.set_defaults(func=cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except DcganError as e:
        print(f"dcgan {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dcgan {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
