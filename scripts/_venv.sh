# Sourced by serve.sh and test.sh: make .venv and install the project with the given extras, at the tested
# versions in constraints.txt, once per change of pyproject.toml, constraints.txt or extras.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ensure_venv() {
  local extras="$1"
  local stamp=".venv/.installed-$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)-${extras//,/_}"
  if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv
  fi
  if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    # torch first, at its pinned version in constraints.txt: here that is the CPU build on disk (an
    # unpinned torch pulls a multi-GB CUDA build)
    if [[ ",$extras," == *",hf,"* ]]; then
      .venv/bin/python -m pip install -q -c constraints.txt torch
    fi
    .venv/bin/python -m pip install -q -c constraints.txt -e ".[$extras]"
    rm -f .venv/.installed-*
    touch "$stamp"
  fi
}
