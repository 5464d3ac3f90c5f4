#!/usr/bin/env bash
# Prepare the GPU check for a bare GPU image (torch, transformers, tokenizers, numpy, onnxruntime there;
# no network): download the two other wheels it needs into .whl/ (git-ignored), and print the command.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl soxr==1.1.0 faster-whisper==1.2.1
cat <<'MSG'
On the GPU machine (carry .whl), one command of about 5 minutes:
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 && python3 -m bench.gpu_check --out $OUT
MSG
