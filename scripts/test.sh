#!/usr/bin/env bash
# The whole test suite: unit tests, integration tests against PostgreSQL and the emulator,
# and clippy. One profile (dev) and one feature set, so DuckDB's C++ compiles once.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hubsync/target}"
cargo clippy --all-targets -- -D warnings
cargo test --all-targets -- --test-threads "${HUBSYNC_TEST_THREADS:-2}"
