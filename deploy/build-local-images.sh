#!/usr/bin/env bash
# Builds HemoStat's container images from binaries already built on this machine, with no registry and no
# base image: each image is `FROM scratch` plus the binary, the shared libraries `ldd` lists for it (with the
# dynamic loader), a static busybox (a shell, and `wget` for the health checks), this machine's public CA
# bundle (for HTTPS notifications and LLM APIs; HemoStat's own connections trust only its own CA), and a
# `hemostat` user.
# The images match deploy/Dockerfile's `coordinator` and `node` targets: same paths, user, environment,
# ports and health checks.
#
#   cargo build --release -p hemostat-coordinator -p hemostat-node -p hemostat-cli --bins
#   deploy/build-local-images.sh
#
# Builds hemostat-base:<tag>, hemostat-coordinator:<tag>, hemostat-node:<tag>, hemostat-cli:<tag> and
# hemostat-redis:<tag> (Redis cannot be pulled here either: it is packaged the same way from this machine's
# redis-server).
#
# Settings (environment):
#   HEMOSTAT_BIN_DIR   folder with hemostat-coordinator, hemostat-node and hemostat
#                      [default: $CARGO_TARGET_DIR/release, else <repository>/target/release]
#   HEMOSTAT_IMAGE_TAG the images' tag [default: local]
#   HEMOSTAT_IMAGES    which images, space-separated, of: coordinator node cli redis [default: all four]
#   REDIS_SERVER       the redis-server to package [default: /usr/bin/redis-server]; redis-cli is taken from
#                      the same folder (the health check uses it)
#   BUSYBOX            a statically linked busybox [default: /bin/busybox, Debian package busybox-static]
#   CA_CERTIFICATES    the public CA bundle [default: /etc/ssl/certs/ca-certificates.crt, Debian package
#                      ca-certificates]
#
# Debug information is stripped from the copies (`strip --strip-debug`) when `strip` exists: a debug build's
# binaries are 150-300 MB with it, about 40 MB without.
set -euo pipefail

repository="$(cd "$(dirname "$0")/.." && pwd)"
bin_dir="${HEMOSTAT_BIN_DIR:-${CARGO_TARGET_DIR:-$repository/target}/release}"
tag="${HEMOSTAT_IMAGE_TAG:-local}"
images="${HEMOSTAT_IMAGES:-coordinator node cli redis}"
redis_server="${REDIS_SERVER:-/usr/bin/redis-server}"
busybox="${BUSYBOX:-/bin/busybox}"
ca_certificates="${CA_CERTIFICATES:-/etc/ssl/certs/ca-certificates.crt}"

# The same user as deploy/Dockerfile's.
hemostat_uid=10001
redis_uid=999

fail() {
  echo "build-local-images: $*" >&2
  exit 1
}

command -v docker >/dev/null || fail "needs the docker CLI"
command -v ldd >/dev/null || fail "needs ldd (Debian package libc-bin)"
[ -x "$busybox" ] || fail "no busybox at $busybox (apt-get install busybox-static)"
if ldd "$busybox" >/dev/null 2>&1; then
  fail "$busybox is dynamically linked; use a static one (Debian package busybox-static: /bin/busybox)"
fi
# The coordinator's HTTP client (webhooks, Slack, LLM APIs) refuses to start without public roots.
[ -f "$ca_certificates" ] || fail "no CA bundle at $ca_certificates (apt-get install ca-certificates)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Copies the executable $1 to $2 (a path inside a context), stripped of debug information if possible.
copy_binary() {
  mkdir -p "$(dirname "$2")"
  if command -v strip >/dev/null; then
    strip --strip-debug -o "$2" "$1"
  else
    cp "$1" "$2"
  fi
  chmod 0755 "$2"
}

# Copies every shared library `ldd` lists for the executable $1, and the dynamic loader, into the root
# folder $2, each at the path ldd names (symbolic links resolved).
copy_libraries() {
  local executable="$1" root="$2" listing
  listing="$(ldd "$executable")" || fail "ldd $executable failed"
  if grep -q "not found" <<<"$listing"; then
    fail "$executable needs libraries this machine lacks: $(grep 'not found' <<<"$listing" | tr -s ' \t' ' ')"
  fi
  # "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and "/lib64/ld-linux-x86-64.so.2 (0x...)";
  # linux-vdso has no file.
  awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$listing" | sort -u |
    while read -r library; do
      mkdir -p "$root$(dirname "$library")"
      cp -L "$library" "$root$library"
    done
}

# The base every HemoStat image starts from: libraries, busybox, users, folders.
build_base() {
  local context="$work/base" root="$work/base/root" binary
  mkdir -p "$root/bin" "$root/etc/ssl/certs" "$root/tmp" "$root/etc/hemostat/certs" "$root/var/lib/hemostat/spool"
  cp "$busybox" "$root/bin/busybox"
  cp -L "$ca_certificates" "$root/etc/ssl/certs/ca-certificates.crt"
  for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  for binary in hemostat-coordinator hemostat-node hemostat; do
    [ -x "$bin_dir/$binary" ] && copy_libraries "$bin_dir/$binary" "$root"
  done
  cat >"$root/etc/passwd" <<EOF
root:x:0:0:root:/root:/bin/sh
hemostat:x:$hemostat_uid:$hemostat_uid:HemoStat:/var/lib/hemostat:/bin/false
redis:x:$redis_uid:$redis_uid:Redis:/data:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
  cat >"$root/etc/group" <<EOF
root:x:0:
hemostat:x:$hemostat_uid:
redis:x:$redis_uid:
nogroup:x:65534:
EOF
  printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
  cat >"$context/Dockerfile" <<EOF
FROM scratch
COPY root/ /
RUN ["/bin/busybox", "sh", "-c", "chmod 1777 /tmp && chown -R $hemostat_uid:$hemostat_uid /var/lib/hemostat"]
ENV PATH=/usr/local/bin:/usr/bin:/bin \\
    HEMOSTAT_CERTS_DIR=/etc/hemostat/certs \\
    HEMOSTAT_DATA_DIR=/var/lib/hemostat \\
    LOG_LEVEL=info
WORKDIR /var/lib/hemostat
USER $hemostat_uid:$hemostat_uid
LABEL org.opencontainers.image.title="HemoStat base" \\
      org.opencontainers.image.description="Built by deploy/build-local-images.sh from this machine's libraries"
EOF
  build "hemostat-base:$tag" "$context"
}

# `docker build` without BuildKit (the legacy builder needs nothing from a registry for FROM scratch); its
# output is shown only when it fails.
build() {
  echo "building $1" >&2
  if ! DOCKER_BUILDKIT=0 docker build --tag "$1" "$2" >"$work/build.log" 2>&1; then
    cat "$work/build.log" >&2
    fail "building $1 failed"
  fi
}

build_coordinator() {
  local context="$work/coordinator"
  copy_binary "$bin_dir/hemostat-coordinator" "$context/hemostat-coordinator"
  copy_binary "$bin_dir/hemostat" "$context/hemostat"
  cat >"$context/Dockerfile" <<EOF
FROM hemostat-base:$tag
COPY hemostat-coordinator /usr/local/bin/hemostat-coordinator
COPY hemostat /usr/local/bin/hemostat
ENV HEMOSTAT_LISTEN=0.0.0.0:50051 \\
    HEMOSTAT_METRICS_LISTEN=0.0.0.0:9464
EXPOSE 50051 9464
# The gRPC health service, asked over mutual TLS with the coordinator's own certificate.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \\
  CMD ["/usr/local/bin/hemostat", "health", "--coordinator", "127.0.0.1:50051", "--coordinator-name", "localhost", "--certs-dir", "/etc/hemostat/certs", "--cert-name", "coordinator"]
ENTRYPOINT ["/usr/local/bin/hemostat-coordinator"]
LABEL org.opencontainers.image.title="HemoStat coordinator"
EOF
  build "hemostat-coordinator:$tag" "$context"
}

build_node() {
  local context="$work/node"
  copy_binary "$bin_dir/hemostat-node" "$context/hemostat-node"
  cat >"$context/Dockerfile" <<EOF
FROM hemostat-base:$tag
COPY hemostat-node /usr/local/bin/hemostat-node
ENV NODE_METRICS_LISTEN=0.0.0.0:9465 \\
    NODE_SPOOL_DIR=/var/lib/hemostat/spool
EXPOSE 9465
# Healthy while a coordinator session is open and answering (the node's own gauge).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \\
  CMD /bin/busybox wget -q -O - "http://127.0.0.1:\${NODE_METRICS_LISTEN##*:}/metrics" | /bin/busybox grep -q '^hemostat_node_coordinator_connected 1' || exit 1
ENTRYPOINT ["/usr/local/bin/hemostat-node"]
LABEL org.opencontainers.image.title="HemoStat node"
EOF
  build "hemostat-node:$tag" "$context"
}

build_cli() {
  local context="$work/cli"
  copy_binary "$bin_dir/hemostat" "$context/hemostat"
  cat >"$context/Dockerfile" <<EOF
FROM hemostat-base:$tag
COPY hemostat /usr/local/bin/hemostat
ENTRYPOINT ["/usr/local/bin/hemostat"]
LABEL org.opencontainers.image.title="HemoStat CLI"
EOF
  build "hemostat-cli:$tag" "$context"
}

# Redis packaged from this machine's redis-server, like the official image's layout (redis-server and
# redis-cli in /usr/local/bin, data in /data, user redis): compose.yaml runs either.
build_redis() {
  local context="$work/redis" root="$work/redis/root" redis_cli
  redis_cli="$(dirname "$redis_server")/redis-cli"
  [ -x "$redis_server" ] || fail "no redis-server at $redis_server (apt-get install redis-server)"
  [ -x "$redis_cli" ] || fail "no redis-cli next to $redis_server (apt-get install redis-tools)"
  mkdir -p "$root/usr/local/bin" "$root/data"
  copy_binary "$redis_server" "$root/usr/local/bin/redis-server"
  copy_binary "$redis_cli" "$root/usr/local/bin/redis-cli"
  copy_libraries "$redis_server" "$root"
  copy_libraries "$redis_cli" "$root"
  cat >"$context/Dockerfile" <<EOF
FROM hemostat-base:$tag
USER 0:0
COPY root/ /
RUN ["/bin/busybox", "chown", "$redis_uid:$redis_uid", "/data"]
WORKDIR /data
USER $redis_uid:$redis_uid
EXPOSE 6379
CMD ["redis-server"]
LABEL org.opencontainers.image.title="Redis (from this machine's redis-server)"
EOF
  build "hemostat-redis:$tag" "$context"
}

for wanted in $images; do
  case "$wanted" in
    coordinator) [ -x "$bin_dir/hemostat-coordinator" ] && [ -x "$bin_dir/hemostat" ] || fail "no $bin_dir/hemostat-coordinator or $bin_dir/hemostat (its health check): build them first" ;;
    node) [ -x "$bin_dir/hemostat-node" ] || fail "no $bin_dir/hemostat-node: build it first" ;;
    cli) [ -x "$bin_dir/hemostat" ] || fail "no $bin_dir/hemostat: build it first" ;;
    redis) ;;
    *) fail "unknown image $wanted (coordinator, node, cli, redis)" ;;
  esac
done

build_base
for wanted in $images; do
  "build_$wanted"
done
echo "built from $bin_dir:$(for wanted in $images; do printf ' hemostat-%s:%s' "$wanted" "$tag"; done)" >&2
