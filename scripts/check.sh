#!/usr/bin/env bash
# What CI runs: formatting, lints, docs, then the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet
./scripts/test.sh
