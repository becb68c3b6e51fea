#!/usr/bin/env bash
# Installs everything the demo and the tests need, idempotently:
#   .venv           Python 3.13 + bpy 5.2.3  (Blender 5.2 LTS, the main environment)
#   .venv-blender45 Python 3.11 + bpy 4.5.15 (Blender 4.5 LTS, the previous LTS)
# plus Debian's ffmpeg. Usage: scripts/bootstrap.sh [main|all]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
which_envs=${1:-all}

find_python() {  # $1 = 3.13 or 3.11
  local v=$1 cand
  for cand in "python$v" "$HOME/.pyenv/versions/$v"*/bin/"python$v" "/usr/local/bin/python$v" "/usr/bin/python$v"; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys' >/dev/null 2>&1; then
      command -v "$cand"; return 0
    fi
  done
  echo "error: Python $v is needed for bpy but was not found (install it, e.g. 'pyenv install $v')." >&2
  return 1
}

ensure_ffmpeg() {
  if command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null; then return 0; fi
  echo "==> installing Debian's ffmpeg"
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq ffmpeg >/dev/null
}

ensure_venv() {  # $1 = dir, $2 = python version, $3 = bpy pin
  local dir=$1 pyver=$2 bpy=$3 py stamp want
  want=$(cat requirements/runtime.txt requirements/test.txt pyproject.toml | sha256sum | cut -c1-16)-$bpy
  stamp="$dir/.bootstrap-stamp"
  if [ -x "$dir/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  py=$(find_python "$pyver")
  echo "==> creating $dir (Python $pyver, $bpy)"
  [ -x "$dir/bin/python" ] || "$py" -m venv "$dir"
  "$dir/bin/python" -m pip install -q --disable-pip-version-check "$bpy" -r requirements/test.txt
  "$dir/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e .
  echo "$want" > "$stamp"
}

ensure_ffmpeg
ensure_venv .venv 3.13 bpy==5.2.3
if [ "$which_envs" = all ]; then
  ensure_venv .venv-blender45 3.11 bpy==4.5.15
fi
