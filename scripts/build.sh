#!/usr/bin/env bash
# Build the worker: build/index.js + build/index_bg.wasm (wrangler.toml's [build] runs this).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/setup.sh
source scripts/setup.sh
# --no-opt: worker-build would download wasm-opt from GitHub (see TOOLCHAIN.md).
exec worker-build --release --no-opt
