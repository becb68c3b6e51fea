# syntax=docker/dockerfile:1
# The worker image AWS Batch runs: `python -m worker render|stitch` (see worker/README.md).
#
#   docker build --build-arg BLENDER_VERSION=5.2.3  -t aws-batch-render-worker:5.2.3 .
#   docker build --build-arg BLENDER_VERSION=4.5.15 -t aws-batch-render-worker:4.5.15 .
#
# Blender comes from the bpy wheel, which exists for one Python per Blender line: bpy 5.2
# for Python 3.13, bpy 4.5 for Python 3.11. One base stage per supported BLENDER_VERSION
# pins that pairing; BLENDER_VERSION picks the stage (BuildKit builds only the one used).
# Another Blender version needs its own stage line here (and in scripts/bootstrap.sh).
# These pins must equal scripts/bootstrap.sh and requirements/runtime.txt
# (tests/test_dockerfile.py checks).
ARG BLENDER_VERSION=5.2.3

FROM python:3.13-slim-bookworm AS python-for-bpy-5.2.3
FROM python:3.11-slim-bookworm AS python-for-bpy-4.5.15

FROM python-for-bpy-${BLENDER_VERSION} AS worker
ARG BLENDER_VERSION
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# Debian 12's ffmpeg (5.1, with libx264/libx265/libvpx/libaom/SVT-AV1 and zimg for EXR tone
# mapping), and the X11/GL libraries the bpy wheel links against; EGL + Mesa (llvmpipe) let
# EEVEE and Workbench render without a GPU. Without EGL they abort the render (SIGABRT).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ffmpeg \
      libx11-6 libxrender1 libxfixes3 libxi6 libxkbcommon0 libsm6 libice6 libgl1 libxext6 libxcb1 \
      libegl1 libegl-mesa0 libgl1-mesa-dri \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/aws-batch-render
COPY requirements/runtime.txt requirements/runtime.txt
RUN pip install "bpy==${BLENDER_VERSION}" -r requirements/runtime.txt

# The project itself last, so code changes do not reinstall Blender.
COPY pyproject.toml ./
COPY addon/ addon/
COPY worker/ worker/
RUN pip install --no-deps . \
 && python -c "import worker.render, worker.stitch, addon.core.jobspec"

RUN useradd --create-home --uid 10001 render \
 && mkdir -p /scratch \
 && chown render /scratch
USER render
ENV WORKER_SCRATCH=/scratch \
    BLENDER_USER_RESOURCES=/home/render/.config/blender
WORKDIR /home/render
ENTRYPOINT ["python", "-m", "worker"]
CMD ["--help"]
