#!/usr/bin/env bash
# The whole test suite, on Blender 5.2 (Python 3.13) and Blender 4.5 (Python 3.11).
# Installs what it needs first (scripts/bootstrap.sh). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh all
status=0
for env in .venv .venv-blender45; do
  echo "==> pytest on $("$env/bin/python" -c 'import bpy, sys; print("Blender", bpy.app.version_string, "/ Python", sys.version.split()[0])')"
  "$env/bin/python" -m pytest "$@" || status=$?
done
exit $status
