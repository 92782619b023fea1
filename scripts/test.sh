#!/usr/bin/env bash
# The whole test suite: unit, integration, golden, reference and doc tests.
# Installs nothing but what cargo fetches; safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --all-targets "$@"
cargo test --doc "$@"
