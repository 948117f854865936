#!/usr/bin/env bash
# Makes the certificates deploy/compose.yaml mounts, with `hemostat certs`: a CA, then one certificate each
# for the coordinator, this host's node and an admin operator, each in a folder of its own so that every
# container gets only its own key (and none gets the CA's key).
#
#   deploy/make-certs.sh [OUT_DIR]        # default: deploy/certs
#
# OUT_DIR/ca/           ca.pem, ca-key.pem   the CA: issue more certificates with it, keep the key safe
# OUT_DIR/coordinator/  ca.pem, coordinator.pem, coordinator-key.pem   mounted into the coordinator
# OUT_DIR/node/         ca.pem, node.pem, node-key.pem                 mounted into the node
# OUT_DIR/operator/     ca.pem, operator.pem, operator-key.pem         for `hemostat --certs-dir OUT_DIR/operator`
#
# Files that exist are kept (an existing CA is reused), so running it again only adds what is missing.
#
# Settings (environment):
#   HEMOSTAT_CLI     the `hemostat` binary [default: `hemostat` on PATH, else target/release/hemostat]
#   NODE_NAME        the node's name, as `hemostat nodes` will show it [default: this host's name]
#   OPERATOR_NAME    the admin operator's name [default: admin]
#   COORDINATOR_DNS  more DNS names the coordinator is reached by, space-separated (always: coordinator,
#                    the Compose service's name, and localhost)
#   COORDINATOR_IP   IP addresses it is reached by, space-separated [default: 127.0.0.1]
#   HEMOSTAT_UID, HEMOSTAT_GID   the user the containers run as [default: 10001, the images' hemostat user]:
#                    when run as root, the coordinator's and node's folders are given to it, so that it can
#                    read its key (keys are written readable by their owner only); otherwise it says what to
#                    run with sudo
set -euo pipefail

repository="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$repository/deploy/certs}"
node_name="${NODE_NAME:-$(hostname)}"
operator_name="${OPERATOR_NAME:-admin}"
container_uid="${HEMOSTAT_UID:-10001}"
container_gid="${HEMOSTAT_GID:-10001}"

fail() {
  echo "make-certs: $*" >&2
  exit 1
}

cli="${HEMOSTAT_CLI:-}"
if [ -z "$cli" ]; then
  for candidate in "$(command -v hemostat || true)" "${CARGO_TARGET_DIR:-$repository/target}/release/hemostat"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then
      cli="$candidate"
      break
    fi
  done
fi
[ -n "$cli" ] && [ -x "$cli" ] ||
  fail "no hemostat CLI: build it (cargo build --release -p hemostat-cli) or set HEMOSTAT_CLI"

ca="$out/ca"
if [ ! -f "$ca/ca.pem" ]; then
  "$cli" certs --dir "$ca" init
fi

# Issues a certificate with `hemostat certs issue <args>` into the CA's folder under the stem $2 and moves
# it to the folder $1 with the CA's certificate, unless $1 holds it already.
issue_into() {
  local folder="$1" stem="$2"
  shift 2
  if [ -f "$folder/$stem.pem" ]; then
    echo "keeping $folder/$stem.pem"
    return
  fi
  mkdir -p "$folder"
  "$cli" certs --dir "$ca" issue "$@" --out "$stem.issuing" >/dev/null
  mv "$ca/$stem.issuing-key.pem" "$folder/$stem-key.pem"
  mv "$ca/$stem.issuing.pem" "$folder/$stem.pem"
  cp "$ca/ca.pem" "$folder/ca.pem"
  echo "issued $folder/$stem.pem ($*)"
}

names=(--dns coordinator --dns localhost)
for dns in ${COORDINATOR_DNS:-}; do
  names+=(--dns "$dns")
done
for ip in ${COORDINATOR_IP:-127.0.0.1}; do
  names+=(--ip "$ip")
done
issue_into "$out/coordinator" coordinator coordinator --name coordinator "${names[@]}"
issue_into "$out/node" node node "$node_name"
issue_into "$out/operator" operator operator "$operator_name" --role admin

if [ "$(id -u)" = 0 ]; then
  chown -R "$container_uid:$container_gid" "$out/coordinator" "$out/node"
  chmod 0750 "$out/coordinator" "$out/node"
elif [ "$(id -u)" != "$container_uid" ]; then
  echo "make-certs: the containers run as $container_uid and cannot read keys owned by you:" >&2
  echo "  sudo chown -R $container_uid:$container_gid $out/coordinator $out/node" >&2
fi
echo "done: $out/coordinator and $out/node for compose.yaml, $out/operator for the CLI, the CA in $out/ca"
