#!/usr/bin/env bash
# One-time set-up on a fresh machine: Fashion-MNIST (Debian package, where apt exists),
# a virtual environment in .venv, and this package installed into it.
#   bash scripts/setup.sh          # for training
#   bash scripts/setup.sh --test   # also the test dependencies (and Debian's chromium, for the studio's browser tests)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo"
  if [ "$(id -u)" -eq 0 ] || [ -n "$sudo" ]; then
    echo "setup: installing Debian's dataset-fashion-mnist" >&2
    $sudo apt-get update -qq && $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null \
      || echo "setup: could not install dataset-fashion-mnist; Fashion-MNIST will be downloaded by Keras" >&2
  fi
fi

# the studio's browser tests drive Debian's headless Chromium (Playwright cannot download its own offline)
if [ "${1:-}" = "--test" ] && ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo"
  if [ "$(id -u)" -eq 0 ] || [ -n "$sudo" ]; then
    echo "setup: installing Debian's chromium for the studio's browser tests" >&2
    $sudo apt-get install -y -qq chromium >/dev/null 2>&1 \
      || { $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium >/dev/null; } \
      || echo "setup: could not install chromium; the studio's browser tests will be skipped, saying so" >&2
  fi
fi

python3 -m venv .venv
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e ".${extras}"
echo "setup: ready (.venv)" >&2
