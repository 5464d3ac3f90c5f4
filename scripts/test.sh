#!/usr/bin/env bash
# Run the test suite: installs the test dependencies into .venv, then pytest with the arguments given.
# Browser tests need Debian's chromium and chromium-driver (installed here when running as root, else skipped with a reason).
source "$(dirname "$0")/_venv.sh"
ensure_venv models,test,hf,bench
if ! command -v chromedriver >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
    || echo "chromium could not be installed: browser tests will be skipped"
fi
exec .venv/bin/python -m pytest "$@"
