#!/usr/bin/env bash
# The demo: installs what it needs (scripts/bootstrap.sh), generates a sample animation with
# bpy, renders it with the local backend (no AWS account needed) and writes out/demo.mp4.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh main
exec .venv/bin/python demo/run_demo.py "$@"
