#!/usr/bin/env bash
# The whole test suite: clippy, unit tests, and the integration tests against PostgreSQL and
# the HubSpot emulator. One profile (dev) and one feature set, so DuckDB's C++ compiles once.
#
# First it makes sure the machine has what the tests need, saying what it does:
# - PostgreSQL answering at HUBSYNC_TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres);
#   a local cluster that is down is started with pg_ctlcluster;
# - prometheus and promtool on PATH (the metrics tests), installed from Debian's packages by
#   scripts/install-prometheus.sh when missing.
# `scripts/test.sh --prerequisites` does only that, and runs no test.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hubsync/target}"

say() { echo "test.sh: $*"; }
fail() { echo "test.sh: error: $*" >&2; exit 1; }

db_url="${HUBSYNC_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
command -v pg_isready >/dev/null 2>&1 ||
  fail "pg_isready is not installed; install PostgreSQL's client tools (Debian: apt-get install postgresql-client)"
if pg_isready -d "$db_url" -q; then
  say "PostgreSQL answers at ${db_url%%\?*}."
elif [ -z "${HUBSYNC_TEST_DATABASE_URL:-}" ] && command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  for version in $(ls /etc/postgresql); do
    say "PostgreSQL is not answering on 127.0.0.1:5432; starting the local cluster $version/main with pg_ctlcluster."
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
  for _ in $(seq 30); do
    pg_isready -d "$db_url" -q && break
    sleep 1
  done
  pg_isready -d "$db_url" -q || fail "PostgreSQL still does not answer at $db_url; start it (trust auth for user postgres) or set HUBSYNC_TEST_DATABASE_URL"
  say "PostgreSQL answers at $db_url."
else
  fail "PostgreSQL does not answer at ${db_url%%\?*}; start a server (user postgres, trust auth on 127.0.0.1:5432) or set HUBSYNC_TEST_DATABASE_URL"
fi

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  say "prometheus and promtool are installed ($(prometheus --version 2>&1 | head -n 1))."
else
  say "prometheus or promtool is missing (the metrics tests need both); installing them from Debian's packages with scripts/install-prometheus.sh."
  scripts/install-prometheus.sh || fail "could not install Prometheus; install the Debian package \`prometheus\` (it brings promtool) and run again"
fi

if [ "${1:-}" = "--prerequisites" ]; then
  say "everything the tests need is here."
  exit 0
fi

say "checking the import graph, then clippy, then every test."
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
