#!/usr/bin/env bash
# The README's quick-start command: a local gateway to try rsproxy end to end.
#
# Installs the dependencies, builds rsproxy, then starts, in a state directory:
#   - a PostgreSQL 15 with TLS from a CA generated here (standing in for Redshift), seeded with
#     a little demo data;
#   - rsproxy in front of it, in the foreground, logging in upstream with TLS verify-full
#     against that CA;
# prints the exact psql line to use, and on Ctrl-C stops everything and removes the state.
#
# Services are started by start_<name> functions listed in SERVICES and stopped in reverse
# order by stop_<name>; config_<name> (optional) prints extra INI lines for rsproxy. Later
# stand-ins (AWS, S3, Redshift) plug in by adding their three functions and their name to
# SERVICES; see the hooks near the end.
#
# Environment (all optional):
#   RSPROXY_GATEWAY_DIR        state directory (default /tmp/rsproxy-gateway as root,
#                              $XDG_RUNTIME_DIR/rsproxy-gateway otherwise)
#   RSPROXY_GATEWAY_PORT       rsproxy's port for clients (5439)
#   RSPROXY_GATEWAY_PG_PORT    PostgreSQL's port (54329)
#   RSPROXY_GATEWAY_ADMIN_PORT rsproxy's admin HTTP port (9187; 0 disables)
#   RSPROXY_GATEWAY_KEEP=1     keep the state directory on exit
#   RSPROXY_SKIP_INSTALL=1     do not run tests/install-deps.sh
#   RSPROXY_BIN                use this rsproxy binary instead of building one
#   RSPROXY_BUILD_DIR          build directory (default <repo>/build)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
PGBIN=/usr/lib/postgresql/15/bin
PROXY_PORT=${RSPROXY_GATEWAY_PORT:-5439}
PG_PORT=${RSPROXY_GATEWAY_PG_PORT:-54329}
ADMIN_PORT=${RSPROXY_GATEWAY_ADMIN_PORT:-9187}
BUILD=${RSPROXY_BUILD_DIR:-$top/build}
if [ "$(id -u)" -eq 0 ]; then
    # PostgreSQL runs as the postgres user, which must reach its data directory: not below
    # root's private runtime directory.
    STATE=${RSPROXY_GATEWAY_DIR:-/tmp/rsproxy-gateway}
    AS_PG=(runuser -u postgres --)
else
    STATE=${RSPROXY_GATEWAY_DIR:-${XDG_RUNTIME_DIR:-/tmp}/rsproxy-gateway}
    AS_PG=()
fi

case "${1:-}" in
-h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
esac

say() { printf '== %s\n' "$*" >&2; }
die() {
    printf 'local-gateway: %s\n' "$*" >&2
    exit 1
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---------------------------------------------------------------------------------------------
# Install and build

if [ -z "${RSPROXY_SKIP_INSTALL:-}" ]; then
    say "installing dependencies (tests/install-deps.sh)"
    "$top/tests/install-deps.sh"
fi
if [ -n "${RSPROXY_BIN:-}" ]; then
    BIN=$RSPROXY_BIN
else
    say "building rsproxy in $BUILD"
    cmake -S "$top" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$BUILD" --target rsproxy -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
    BIN=$BUILD/proxy/rsproxy
fi
[ -x "$BIN" ] || die "no rsproxy binary at $BIN"

for p in "$PROXY_PORT" "$PG_PORT"; do
    if port_in_use "$p"; then
        die "port $p is in use; set RSPROXY_GATEWAY_PORT / RSPROXY_GATEWAY_PG_PORT"
    fi
done
if [ "$ADMIN_PORT" != 0 ] && port_in_use "$ADMIN_PORT"; then
    die "admin port $ADMIN_PORT is in use; set RSPROXY_GATEWAY_ADMIN_PORT (0 disables)"
fi

# A previous gateway that was killed without cleaning up: stop its PostgreSQL first.
if [ -f "$STATE/pgdata/postmaster.pid" ]; then
    say "stopping a PostgreSQL left over in $STATE"
    "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$STATE/pgdata" -m fast -w stop >/dev/null 2>&1 || true
fi
rm -rf "$STATE"
mkdir -p "$STATE"
chmod 755 "$STATE"

# ---------------------------------------------------------------------------------------------
# Services

STARTED=()

start_postgres() {
    say "PostgreSQL 15 with TLS on 127.0.0.1:$PG_PORT"
    local tls=$STATE/tls run=$STATE/run
    mkdir -p "$tls" "$run"
    # A CA made for this gateway, and a server certificate for localhost and 127.0.0.1.
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$tls/ca.key" -out "$tls/ca.pem" -days 30 -subj "/CN=rsproxy local gateway CA" \
        -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$tls/server.key" -out "$tls/server.csr" -subj "/CN=localhost" 2>/dev/null
    printf '%s\n' "basicConstraints=CA:FALSE" "extendedKeyUsage=serverAuth" \
        "subjectAltName=DNS:localhost,IP:127.0.0.1" >"$tls/server.ext"
    openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
        -CAcreateserial -days 30 -out "$tls/server.crt" -extfile "$tls/server.ext" 2>/dev/null
    chmod 600 "$tls/ca.key" "$tls/server.key"
    chmod 644 "$tls/ca.pem" "$tls/server.crt"
    chmod 755 "$tls"
    if [ ${#AS_PG[@]} -gt 0 ]; then
        chown postgres:postgres "$tls/server.key" "$tls/server.crt" "$run"
    fi
    chmod 700 "$run"

    mkdir -p "$STATE/pgdata"
    [ ${#AS_PG[@]} -gt 0 ] && chown postgres:postgres "$STATE/pgdata"
    "${AS_PG[@]}" "$PGBIN/initdb" -D "$STATE/pgdata" -U postgres -E UTF8 --locale=C.UTF-8 \
        -A trust >"$STATE/initdb.log" 2>&1 || die "initdb failed: see $STATE/initdb.log"
    cat >>"$STATE/pgdata/postgresql.conf" <<EOF
# rsproxy local gateway
listen_addresses = '127.0.0.1'
unix_socket_directories = '$run'
ssl = on
ssl_cert_file = '$tls/server.crt'
ssl_key_file = '$tls/server.key'
ssl_min_protocol_version = 'TLSv1.2'
password_encryption = 'scram-sha-256'
EOF
    # TCP only over TLS with a password; the Unix socket (owner-only directory) for seeding.
    cat >"$STATE/pgdata/pg_hba.conf" <<EOF
local   all   postgres                 trust
hostssl demo  demo      127.0.0.1/32   scram-sha-256
EOF
    "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$STATE/pgdata" -l "$STATE/pgdata/postgres.log" -w -t 60 \
        -o "-p $PG_PORT" start >/dev/null || die "PostgreSQL did not start: see $STATE/pgdata/postgres.log"

    # The demo role's password lives only in a 0600 file that rsproxy reads.
    openssl rand -hex 24 >"$STATE/upstream-password"
    chmod 600 "$STATE/upstream-password"
    # psql reads the password from the file itself (\set with backquotes), so it never shows
    # up on a command line.
    "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$run" -p "$PG_PORT" -U postgres -d postgres \
        >/dev/null <<EOF
\\set pw \`cat '$STATE/upstream-password'\`
CREATE ROLE demo LOGIN PASSWORD :'pw';
CREATE DATABASE demo OWNER demo;
EOF
    "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$run" -p "$PG_PORT" -U postgres -d demo \
        >/dev/null <<'EOF'
SET ROLE demo;
CREATE TABLE events (
    id         int PRIMARY KEY,
    happened   timestamptz NOT NULL,
    kind       text NOT NULL,
    amount_usd numeric(10, 2)
);
INSERT INTO events
SELECT g, timestamptz '2024-01-01 00:00+00' + g * interval '37 minutes',
       (ARRAY['signup', 'purchase', 'refund', 'login'])[1 + g % 4],
       CASE WHEN g % 4 = 1 THEN round((g * 7.31) % 500, 2) END
FROM generate_series(1, 1000) g;
CREATE VIEW daily_revenue AS
SELECT date_trunc('day', happened)::date AS day, sum(amount_usd) AS revenue
FROM events WHERE kind = 'purchase' GROUP BY 1 ORDER BY 1;
EOF
}

stop_postgres() {
    "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$STATE/pgdata" -m fast -w stop >/dev/null 2>&1 || true
}

config_postgres() {
    cat <<EOF
[upstream]
auth = password
host = localhost
port = $PG_PORT
sslmode = verify-full
sslrootcert = $STATE/tls/ca.pem
user = demo
password_file = $STATE/upstream-password

[s3]
; PostgreSQL serves COPY ... STDIN/STDOUT itself: relay it as is.
copy_stdin = false
EOF
}

# --- Hooks for the stand-ins of later issues. Each adds start_<name>, stop_<name> and,
# optionally, config_<name> (extra INI lines; a section may appear only once in the file),
# then appends <name> to SERVICES below. Planned:
#   aws       tests/standins/aws (Redshift, Redshift Serverless, STS, IMDS...)  -> [iam]
#   s3        tests/standins/s3 (verifying S3 front over s3rver)                 -> [s3]
#   redshift  tests/standins/redshift (Redshift SQL in front of PostgreSQL)      -> [upstream]
SERVICES=(postgres)

# ---------------------------------------------------------------------------------------------
# rsproxy in the foreground, and the one cleanup path

RSPROXY_PID=
cleanup() {
    local status=$?
    trap - INT TERM EXIT
    if [ -n "$RSPROXY_PID" ] && kill -0 "$RSPROXY_PID" 2>/dev/null; then
        kill -TERM "$RSPROXY_PID" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$RSPROXY_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$RSPROXY_PID" 2>/dev/null || true
    fi
    local i
    for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
        "stop_${STARTED[$i]}"
    done
    if [ -z "${RSPROXY_GATEWAY_KEEP:-}" ]; then
        rm -rf "$STATE"
    else
        say "kept $STATE"
    fi
    exit "$status"
}
on_signal() {
    say "stopping"
    exit 0
}
trap cleanup EXIT
trap on_signal INT TERM

for svc in "${SERVICES[@]}"; do
    "start_$svc"
    STARTED+=("$svc")
done

INI=$STATE/rsproxy.ini
{
    cat <<EOF
; Written by tests/local-gateway.sh
[proxy]
listen_addr = 127.0.0.1
listen_port = $PROXY_PORT
client_auth = trust
admin_addr = 127.0.0.1
admin_port = $ADMIN_PORT
log_level = info

EOF
    for svc in "${SERVICES[@]}"; do
        if declare -F "config_$svc" >/dev/null; then
            "config_$svc"
            echo
        fi
    done
} >"$INI"
chmod 600 "$INI"

say "rsproxy on 127.0.0.1:$PROXY_PORT (upstream TLS verify-full, CA $STATE/tls/ca.pem)"
"$BIN" -c "$INI" &
RSPROXY_PID=$!
for _ in $(seq 100); do
    port_in_use "$PROXY_PORT" && break
    kill -0 "$RSPROXY_PID" 2>/dev/null || die "rsproxy exited during startup"
    sleep 0.1
done
port_in_use "$PROXY_PORT" || die "rsproxy does not accept on port $PROXY_PORT"

cat >&2 <<EOF

rsproxy is running. In another terminal:

    psql "host=127.0.0.1 port=$PROXY_PORT dbname=demo user=demo sslmode=disable"

then, for example:

    SELECT kind, count(*) FROM events GROUP BY kind;
    SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid();  -- rsproxy's TLS upstream

The client talks plaintext to rsproxy on loopback; rsproxy talks TLS (verify-full) to the server.
Ctrl-C stops rsproxy and PostgreSQL and removes $STATE.

EOF

# wait returns early when a trapped signal arrives; the trap then exits through cleanup.
set +e
wait "$RSPROXY_PID"
status=$?
RSPROXY_PID=
set -e
say "rsproxy exited with status $status"
exit "$status"
