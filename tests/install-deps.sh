#!/usr/bin/env bash
# Installs everything rsproxy needs to build, run the local gateway and run every test, on
# Debian 12 (bookworm), as root or through sudo. Safe to run again: it installs only what is
# missing, and reruns `npm ci` only when a package-lock.json changed. Nothing is downloaded
# from outside Debian's and npm's registries.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: run as root or install sudo" >&2; exit 1; }
    SUDO="sudo"
fi

packages=(
    # build
    build-essential cmake pkg-config clang libclang-rt-14-dev clang-format
    libuv1-dev libinih-dev libcurl4-openssl-dev libssl-dev node-llhttp libjansson-dev
    libexpat1-dev zlib1g-dev
    # PostgreSQL stand-in, its clients (psql, pgbench) and the performance anchor
    postgresql postgresql-contrib postgresql-client pgbouncer
    # integration tests: pytest, the Python clients, a Prometheus text parser for /metrics
    python3 python3-pytest python3-pytest-xdist python3-pytest-timeout python3-psycopg
    python3-psycopg2 python3-botocore python3-boto3 python3-cryptography python3-yaml
    python3-prometheus-client
    # pgjdbc and a JDK to compile the small Java client at test time
    default-jdk-headless libpostgresql-jdbc-java
    # tools the harness, the gateway script and the stand-ins call
    openssl ca-certificates procps socat iproute2 curl util-linux
)

# Node.js and npm: Debian's nodejs/npm, unless a node with npm is already installed (for
# example NodeSource's nodejs, which bundles npm and conflicts with Debian's npm package).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    packages+=(nodejs npm)
fi

export DEBIAN_FRONTEND=noninteractive
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}" >&2
    $SUDO apt-get update -q
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}"
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 18 ]; then
    echo "install-deps: node $(node --version) is too old (need >= 18)" >&2
    exit 1
fi

# npm packages for the tests (node-postgres, the S3 stand-in...), pinned by each
# package-lock.json under tests/. A stamp with the lockfile's hash skips unchanged ones.
while IFS= read -r -d '' lock; do
    dir=$(dirname "$lock")
    stamp="$dir/node_modules/.rsproxy-lock.sha256"
    sum=$(sha256sum "$lock" | cut -d' ' -f1)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ]; then
        continue
    fi
    echo "install-deps: npm ci in ${dir#"$here"/}" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$sum" >"$stamp"
done < <(find "$here" -name package-lock.json -not -path '*/node_modules/*' -print0 | sort -z)
