#!/usr/bin/env bash
# Installs Prometheus and promtool from Debian's packages, for tests/metrics.rs (promtool
# check metrics/rules, and a real Prometheus scraping the daemon). Idempotent: does nothing
# when both are already on PATH. The package's service is not started; tests start their own.
set -euo pipefail

if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
$SUDO apt-get update -qq
# --no-install-recommends: skip prometheus-node-exporter, which tests do not need.
$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
command -v promtool >/dev/null
command -v prometheus >/dev/null
echo "installed: $(prometheus --version 2>&1 | head -n 1)"
