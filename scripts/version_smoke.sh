#!/usr/bin/env bash
# CI smoke test on the oldest and the newest Blender the extension supports (the full
# suite stays on the two LTS versions, scripts/test.sh): for each version, a venv with
# that bpy (pinned by requirements/constraints-bpy-<V>.txt, its Python read from the
# wheel's tag on the package index), then tests/test_version_smoke.py in it: Blender's
# own installer installs the built extension, a tiny scene (3 frames, with a soundtrack)
# is submitted on the local backend, and the video is downloaded and ffprobed.
# The venvs are cached outside the repository ($AWS_BATCH_RENDER_IMAGE_CACHE/venvs),
# rebuilt when the constraints or the test requirements change.
#   scripts/version_smoke.sh [VERSION ...]   (default: 4.2.23 5.3.0)
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
start=$SECONDS
CACHE=${AWS_BATCH_RENDER_IMAGE_CACHE:-/var/cache/aws-batch-render-ci}/venvs
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(4.2.23 5.3.0)
mkdir -p "$CACHE"

find_python() {  # $1 = 3.13 or 3.11 (as scripts/bootstrap.sh finds it)
  local v=$1 cand
  for cand in "$HOME/.pyenv/versions/$v"*/bin/"python$v" "/usr/local/bin/python$v" "/usr/bin/python$v" "python$v"; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys' >/dev/null 2>&1; then
      command -v "$cand"; return 0
    fi
  done
  echo "error: Python $v is needed for this bpy but was not found (install it, e.g. 'pyenv install $v')." >&2
  return 1
}

ensure_smoke_venv() {  # $1 = bpy version -> prints the venv's python
  local v=$1 dir="$CACHE/bpy-$1" pins="requirements/constraints-bpy-$1.txt" py want
  if [ ! -f "$pins" ]; then
    echo "error: no $pins: make it with  .venv/bin/python scripts/make_constraints.py $v" >&2
    return 1
  fi
  want=$(cat "$pins" requirements/test.txt requirements/runtime.txt | sha256sum | cut -c1-16)
  if [ -x "$dir/bin/python" ] && [ "$(cat "$dir/.smoke-stamp" 2>/dev/null)" = "$want" ]; then
    echo "$dir/bin/python"; return 0
  fi
  pyver=$(.venv/bin/python -c 'import sys; from addon.core.aws.bpy_wheels import wheel_python; print(wheel_python(sys.argv[1]))' "$v")
  py=$(find_python "$pyver")
  echo "==> creating $dir (Python $pyver, bpy $v)" >&2
  rm -rf "$dir"
  "$py" -m venv "$dir"
  "$dir/bin/python" -m pip install -q --disable-pip-version-check -c "$pins" "bpy==$v" -r requirements/test.txt >&2
  echo "$want" > "$dir/.smoke-stamp"
  echo "$dir/bin/python"
}

status=0
for v in "${versions[@]}"; do
  t=$SECONDS
  py=$(ensure_smoke_venv "$v")
  echo "==> smoke test on bpy $v (venv ready after $((SECONDS - t)) s)"
  # PYTHONPATH: the checkout's code, not an install (the cached venv serves any clone)
  PYTHONPATH=$PWD AWSBR_SMOKE_BPY=$v "$py" -m pytest -q -m version_smoke tests/test_version_smoke.py || status=$?
  echo "==> bpy $v smoke test in $((SECONDS - t)) s"
done
echo "==> version smoke tier total $((SECONDS - start)) s"
exit $status
