#!/usr/bin/env bash
# Install what cpm-session needs, idempotently: Debian packages (when root), a virtualenv in .venv,
# the package with its test extras. A second run only checks and returns in a second or two.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PKGS="xvfb xauth xdotool x11-utils libgl1-mesa-dri libglu1-mesa libegl1 fonts-dejavu-core imagemagick"
missing=""
for p in $DEB_PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "bootstrap: please install these Debian packages (as root):$missing" >&2
  fi
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if ! "$PY" -c "import ensurepip, venv" >/dev/null 2>&1; then
  # Debian's system Python ships venv/ensurepip separately
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing python3-venv"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  else
    echo "bootstrap: $PY has no venv module; install python3-venv (as root)" >&2
    exit 1
  fi
fi
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $($PY --version)"
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
stamp=".venv/.cpm-installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -e "$stamp" ]; then
  echo "bootstrap: installing cpm-session and its dependencies into .venv (PsychoPy is large: first run takes minutes)"
  if ! .venv/bin/python -m pip install -q -e ".[test]" > .venv/install.log 2>&1; then
    tail -40 .venv/install.log >&2
    echo "bootstrap: pip install failed (full log: .venv/install.log)" >&2
    exit 1
  fi
  rm -f .venv/.cpm-installed-*
  touch "$stamp"
fi
