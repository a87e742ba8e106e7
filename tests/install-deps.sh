#!/usr/bin/env bash
# Installs everything rsproxy needs to build, run the local gateway and run every test, on
# Debian 12 (bookworm), as root or through sudo. Safe to run again: apt-get and npm ci are
# idempotent. Nothing is downloaded from outside Debian's and npm's registries.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

packages=(
    # build
    build-essential cmake pkg-config clang libclang-rt-14-dev clang-format
    libuv1-dev libinih-dev libcurl4-openssl-dev libssl-dev node-llhttp libjansson-dev
    libexpat1-dev zlib1g-dev
    # PostgreSQL stand-in, clients and the performance anchor
    postgresql postgresql-contrib postgresql-client pgbouncer
    # integration tests
    python3 python3-pytest python3-pytest-xdist python3-psycopg python3-psycopg2
    python3-botocore python3-boto3 python3-cryptography
    default-jdk-headless libpostgresql-jdbc-java nodejs npm
    openssl ca-certificates procps socat iproute2 curl
)

export DEBIAN_FRONTEND=noninteractive
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# npm packages for the tests (node-postgres, the S3 stand-in), pinned by package-lock.json.
for dir in "$here"/integration/node "$here"/standins/s3; do
    if [ -f "$dir/package-lock.json" ]; then
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    fi
done
