#!/usr/bin/env bash
# The whole test suite: clippy, unit tests, and the integration tests against PostgreSQL and
# the HubSpot emulator. One profile (dev) and one feature set, so DuckDB's C++ compiles once.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hubsync/target}"
python3 scripts/import-graph.py
# Clippy's lints, as `cargo clippy --workspace --all-targets -- -D warnings` gives them, but run
# through a normal build (clippy-driver as the workspace's rustc wrapper): `cargo clippy` checks
# in its own mode, whose build script for DuckDB differs, so it would compile DuckDB's C++ a
# second time. This way DuckDB compiles once for the lints and the tests.
RUSTC_WORKSPACE_WRAPPER="$(command -v clippy-driver)" CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__" \
  cargo test --workspace --no-run --lib --bins --tests --examples
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --no-fail-fast --lib --bins --tests -- --test-threads "${HUBSYNC_TEST_THREADS:-2}" 2>&1 | tee "$log" || status=$?
passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s += $1} END {print s + 0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s += $1} END {print s + 0}')
echo
echo "tests: $passed passed, $failed failed"
exit "$status"
