#!/usr/bin/env bash
# shellcheck disable=SC2317 # cleanup and its helpers run from traps
# The README's quick-start command: a local gateway that shows rsproxy's features end to end on
# the built-in stand-ins for AWS, S3 and Redshift (tests/standins/).
#
# Installs the dependencies, builds rsproxy, then starts, in a state directory:
#   - PostgreSQL 15: the data behind "Redshift" (database dev, demo tables, the database user
#     IAM:alice with grants on them);
#   - the Redshift SQL stand-in in front of it, TLS only, with a certificate from a CA
#     generated for this run: cluster "examplecluster" (COPY/UNLOAD against S3, version 8.0.2);
#   - the AWS stand-in: an account with a principal whose keys rsproxy reads from an AWS profile
#     in the state directory (aws/config, aws/credentials), the cluster, and an IAM role for
#     COPY/UNLOAD attached to it with access to the demo bucket;
#   - the S3 stand-in with the bucket rsproxy-demo, holding data/cities.csv and a lifecycle
#     rule that expires the tempdir (tmp/) after a day;
#   - rsproxy in IAM mode in the foreground: GetClusterCredentials for each client's user,
#     the endpoint discovered with DescribeClusters, TLS verify-full against the generated CA,
#     [s3] aws_iam_role and tempdir for COPY/UNLOAD;
# checks that alice logs in, prints the psql line and what to try, and on Ctrl-C stops
# everything and removes the state directory.
#
# Environment (all optional):
#   RSPROXY_GATEWAY_DIR           state directory (default /tmp/rsproxy-gateway as root,
#                                 $XDG_RUNTIME_DIR/rsproxy-gateway otherwise)
#   RSPROXY_GATEWAY_PORT          rsproxy's port for clients (5439)
#   RSPROXY_GATEWAY_PG_PORT       PostgreSQL's port (15432)
#   RSPROXY_GATEWAY_REDSHIFT_PORT the Redshift stand-in's port, the cluster endpoint (15439)
#   RSPROXY_GATEWAY_AWS_PORT      the AWS stand-in's port (15440)
#   RSPROXY_GATEWAY_S3_PORT       the S3 stand-in's port (15441)
#   RSPROXY_GATEWAY_ADMIN_PORT    rsproxy's admin HTTP port (9187; 0 disables)
#   RSPROXY_GATEWAY_KEEP=1        keep the state directory (logs, rsproxy.ini) on exit
#   RSPROXY_SKIP_INSTALL=1        do not run tests/install-deps.sh
#   RSPROXY_BIN                   use this rsproxy binary instead of building one
#   RSPROXY_BUILD_DIR             build directory (default <repo>/build)
# rsproxy's own RSPROXY_<SECTION>_<KEY> variables apply as usual (e.g.
# RSPROXY_PROXY_LOG_LEVEL=debug). AWS_* variables of the calling shell are ignored: the gateway
# never uses real AWS credentials.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
PGBIN=/usr/lib/postgresql/15/bin
PYTHON=/usr/bin/python3
STANDINS=$top/tests/standins
# Shared with docker/compose.yaml: the SQL behind "Redshift" and the S3 tool.
GATEWAY_FILES=$top/docker/gateway
PROXY_PORT=${RSPROXY_GATEWAY_PORT:-5439}
PG_PORT=${RSPROXY_GATEWAY_PG_PORT:-15432}
REDSHIFT_PORT=${RSPROXY_GATEWAY_REDSHIFT_PORT:-15439}
AWS_PORT=${RSPROXY_GATEWAY_AWS_PORT:-15440}
S3_PORT=${RSPROXY_GATEWAY_S3_PORT:-15441}
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

# The demo account (the stand-in's, not a real AWS account).
REGION=us-east-1
ACCOUNT=123456789012
CLUSTER=examplecluster
BUCKET=rsproxy-demo
TEMPDIR=s3://$BUCKET/tmp/
COPY_ROLE=arn:aws:iam::$ACCOUNT:role/RedshiftCopyUnload
PROFILE=rsproxy-gateway
AWS_URL=http://127.0.0.1:$AWS_PORT
S3_URL=http://127.0.0.1:$S3_PORT

case "${1:-}" in
-h | --help)
    sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
"") ;;
*)
    echo "local-gateway: unknown argument $1 (try --help)" >&2
    exit 2
    ;;
esac

say() { printf '== %s\n' "$*" >&2; }
die() {
    printf 'local-gateway: %s\n' "$*" >&2
    exit 1
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A child that exited stays a zombie until waited for, and kill -0 still succeeds on it.
alive() {
    local st
    st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    st=${st##*) }
    [ "${st%% *}" != Z ]
}

# The environment variable that sets a port (PROXY_PORT -> RSPROXY_GATEWAY_PORT, ...).
knob() { [ "$1" = PROXY_PORT ] && echo RSPROXY_GATEWAY_PORT || echo "RSPROXY_GATEWAY_$1"; }

for v in PROXY_PORT PG_PORT REDSHIFT_PORT AWS_PORT S3_PORT ADMIN_PORT; do
    p=${!v}
    if ! [[ $p =~ ^[0-9]{1,5}$ ]] || [ "$p" -gt 65535 ] || { [ "$p" -eq 0 ] && [ "$v" != ADMIN_PORT ]; }; then
        die "$(knob "$v")=$p is not a port number"
    fi
done
# The state path ends up in JSON, INI and libpq conninfo strings: keep it plain.
[[ $STATE =~ ^/[A-Za-z0-9_./-]+$ ]] ||
    die "RSPROXY_GATEWAY_DIR must be an absolute path of letters, digits and _ . / - (got $STATE)"

# The stand-ins and rsproxy must see neither the caller's AWS setup (profiles, keys, CA bundles
# would be used instead of the stand-in's) nor an HTTP proxy for loopback addresses.
while IFS= read -r v; do
    unset "$v"
done < <(compgen -e | grep '^AWS_' || true)
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
export no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"

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
command -v node >/dev/null || die "node is not installed: run tests/install-deps.sh"
[ -d "$STANDINS/s3/node_modules/s3rver" ] ||
    die "$STANDINS/s3/node_modules is missing: run tests/install-deps.sh (npm ci)"

# A previous gateway that was killed without cleaning up: stop what it left running. Only a
# directory this script made (it holds the marker file) is ever removed.
if [ -e "$STATE" ]; then
    if [ ! -f "$STATE/.rsproxy-gateway" ] && [ -n "$(ls -A "$STATE" 2>/dev/null)" ]; then
        die "$STATE exists and was not made by this script; remove it or set RSPROXY_GATEWAY_DIR"
    fi
    for f in "$STATE"/run/*.pid; do
        [ -f "$f" ] || continue
        pid=$(cat "$f")
        # Only a process that still runs from this state directory (the PID may be reused).
        if [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" &&
            tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$STATE/"; then
            say "stopping $(basename "$f" .pid) (pid $pid) left over in $STATE"
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 50); do
                alive "$pid" || break
                sleep 0.1
            done
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    if [ -f "$STATE/pgdata/postmaster.pid" ]; then
        say "stopping a PostgreSQL left over in $STATE"
        "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$STATE/pgdata" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$STATE"
fi
for v in PROXY_PORT PG_PORT REDSHIFT_PORT AWS_PORT S3_PORT; do
    if port_in_use "${!v}"; then
        die "port ${!v} is in use; set $(knob "$v")"
    fi
done
if [ "$ADMIN_PORT" != 0 ] && port_in_use "$ADMIN_PORT"; then
    die "admin port $ADMIN_PORT is in use; set RSPROXY_GATEWAY_ADMIN_PORT (0 disables)"
fi

mkdir -p "$STATE"
chmod 755 "$STATE"
touch "$STATE/.rsproxy-gateway"
mkdir -p "$STATE/run" "$STATE/logs" "$STATE/tls" "$STATE/aws"
chmod 700 "$STATE/run" "$STATE/aws"

# ---------------------------------------------------------------------------------------------
# Generated files: TLS, the world, the AWS profile

make_tls() {
    local tls=$STATE/tls
    # A CA made for this gateway, and a certificate for localhost and 127.0.0.1, the cluster
    # endpoint's name: rsproxy verifies it (verify-full) against the CA, as it would Redshift's.
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$tls/ca.key" -out "$tls/ca.pem" -days 30 -subj "/CN=rsproxy local gateway CA" \
        -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$tls/server.key" -out "$tls/server.csr" -subj "/CN=localhost" 2>/dev/null
    printf '%s\n' "basicConstraints=CA:FALSE" "extendedKeyUsage=serverAuth" \
        "subjectAltName=DNS:localhost,IP:127.0.0.1" >"$tls/server.ext"
    openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
        -set_serial "0x$(openssl rand -hex 8)" -days 30 -out "$tls/server.crt" \
        -extfile "$tls/server.ext" 2>/dev/null
    # Nothing else is ever signed with the CA key.
    rm -f "$tls/ca.key" "$tls/server.csr" "$tls/server.ext"
    chmod 600 "$tls/server.key"
    chmod 644 "$tls/ca.pem" "$tls/server.crt"
}

make_world() {
    # The principal's keys are made for this run; they live only in 0600 files.
    AKID=AKIA$(openssl rand -hex 8 | tr a-f A-F)
    local secret
    secret=$(openssl rand -base64 30)
    local arn_rs="arn:aws:redshift:$REGION:$ACCOUNT"
    umask 077
    cat >"$STATE/world.json" <<EOF
{
  "region": "$REGION",
  "account": "$ACCOUNT",
  "principals": {
    "$AKID": {
      "secret": "$secret",
      "arn": "arn:aws:iam::$ACCOUNT:user/rsproxy-gateway",
      "allow": [
        {"action": "redshift:GetClusterCredentials",
         "resource": ["$arn_rs:dbuser:$CLUSTER/*", "$arn_rs:dbname:$CLUSTER/*"]},
        {"action": "redshift:DescribeClusters", "resource": "$arn_rs:cluster:$CLUSTER"},
        "s3:*"
      ],
      "s3": ["s3://$BUCKET/*"]
    }
  },
  "roles": {
    "$COPY_ROLE": {
      "trust": ["redshift.amazonaws.com"],
      "allow": ["s3:*"],
      "s3": ["s3://$BUCKET/*"]
    }
  },
  "clusters": {
    "$CLUSTER": {
      "endpoint": {"Address": "localhost", "Port": $REDSHIFT_PORT},
      "dbname": "dev",
      "iam_roles": ["$COPY_ROLE"],
      "default_iam_role": "$COPY_ROLE",
      "pg_admin_dsn": "host=$STATE/pgsock port=$PG_PORT user=postgres dbname=postgres",
      "password_encryption": "md5",
      "db_users": ["alice"]
    }
  },
  "buckets": ["$BUCKET"]
}
EOF
    # The profile rsproxy uses (AWS_PROFILE): the keys in the credentials file, the region and
    # the stand-ins' endpoints in the config file, as the AWS SDKs read them.
    cat >"$STATE/aws/credentials" <<EOF
[$PROFILE]
aws_access_key_id = $AKID
aws_secret_access_key = $secret
EOF
    cat >"$STATE/aws/config" <<EOF
[profile $PROFILE]
region = $REGION
services = $PROFILE

[services $PROFILE]
redshift =
  endpoint_url = $AWS_URL
sts =
  endpoint_url = $AWS_URL
s3 =
  endpoint_url = $S3_URL
EOF
    # For a shell: `. aws.env` points boto3 (and newer AWS CLIs) at the same profile.
    cat >"$STATE/aws.env" <<EOF
# Source this file to use the gateway's stand-in account: the keys stay in $STATE/aws.
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
export AWS_CONFIG_FILE=$STATE/aws/config
export AWS_SHARED_CREDENTIALS_FILE=$STATE/aws/credentials
export AWS_PROFILE=$PROFILE
export AWS_EC2_METADATA_DISABLED=true
export AWS_ENDPOINT_URL_S3=$S3_URL
EOF
    # `s3 ls [s3://bucket/prefix]` and `s3 cat s3://bucket/key` with that profile.
    cat >"$STATE/s3" <<EOF
#!/bin/sh
# The gateway's S3 stand-in through boto3 (docker/gateway/s3.py) with the gateway's profile.
. "$STATE/aws.env"
exec $PYTHON "$GATEWAY_FILES/s3.py" "\$@"
EOF
    umask 022
    chmod 700 "$STATE/s3"
}

# ---------------------------------------------------------------------------------------------
# Services. The stand-ins run in sessions of their own: Ctrl-C in the terminal reaches only
# this script (and rsproxy), which then stops everything in order. Each writes its pid to
# run/<name>.pid (for a later run to clean up after a killed one), its first stdout line
# (LISTENING <port>) to run/<name>.out and its log to logs/<name>.log.

declare -A PIDS=()
RSPROXY_PID=

spawn() {
    local name=$1
    shift
    setsid "$@" </dev/null >"$STATE/run/$name.out" 2>"$STATE/logs/$name.log" &
    PIDS[$name]=$!
    echo "$!" >"$STATE/run/$name.pid"
}

wait_listening() {
    local name=$1 pid=${PIDS[$1]}
    for _ in $(seq 600); do
        grep -q '^LISTENING ' "$STATE/run/$name.out" 2>/dev/null && return 0
        if ! alive "$pid"; then
            tail -n 20 "$STATE/logs/$name.log" >&2 || true
            die "the $name stand-in exited during startup: see $STATE/logs/$name.log"
        fi
        sleep 0.05
    done
    die "the $name stand-in did not start within 30 s: see $STATE/logs/$name.log"
}

stop_pid() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do
        alive "$pid" || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

start_aws() {
    say "AWS stand-in on $AWS_URL (account $ACCOUNT, cluster $CLUSTER, role for COPY/UNLOAD)"
    spawn aws "$PYTHON" "$STANDINS/aws/aws_standin.py" --port "$AWS_PORT" \
        --state "$STATE/world.json"
}

start_s3() {
    say "S3 stand-in on $S3_URL (bucket $BUCKET)"
    spawn s3 node "$STANDINS/s3/front.js" --port "$S3_PORT" --state "$STATE/world.json" \
        --aws-control "$AWS_URL" --data-dir "$STATE/s3-data"
}

start_redshift() {
    say "Redshift stand-in on localhost:$REDSHIFT_PORT (TLS only, COPY/UNLOAD through S3)"
    # Plain TCP to PostgreSQL on loopback: over TLS, PostgreSQL would offer SCRAM-SHA-256-PLUS,
    # which a client bound to the stand-in's certificate could never complete.
    spawn redshift "$PYTHON" "$STANDINS/redshift/redshift_standin.py" --port "$REDSHIFT_PORT" \
        --state "$STATE/world.json" --cluster "$CLUSTER" --require-ssl \
        --upstream "host=127.0.0.1 port=$PG_PORT sslmode=disable" \
        --tls-cert "$STATE/tls/server.crt" --tls-key "$STATE/tls/server.key" \
        --aws-control "$AWS_URL" --s3-endpoint "$S3_URL"
}

start_postgres() {
    say "PostgreSQL 15 on 127.0.0.1:$PG_PORT (the data behind the Redshift stand-in)"
    local run=$STATE/pgsock
    mkdir -p "$run" "$STATE/pgdata"
    if [ ${#AS_PG[@]} -gt 0 ]; then
        chown postgres:postgres "$run" "$STATE/pgdata" "$STATE/logs"
    fi
    chmod 700 "$run"
    "${AS_PG[@]}" "$PGBIN/initdb" -D "$STATE/pgdata" -U postgres -E UTF8 --locale=C.UTF-8 \
        -A trust -N >"$STATE/logs/initdb.log" 2>&1 || die "initdb failed: see $STATE/logs/initdb.log"
    cat >>"$STATE/pgdata/postgresql.conf" <<EOF
# rsproxy local gateway: throwaway data, so no durability
listen_addresses = '127.0.0.1'
unix_socket_directories = '$run'
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    # The Unix socket (owner-only directory) for the AWS stand-in, which sets the passwords it
    # mints, and for seeding; TCP for the Redshift stand-in, which relays each client's
    # password exchange (md5 also runs SCRAM for SCRAM-stored secrets).
    cat >"$STATE/pgdata/pg_hba.conf" <<EOF
local   all   postgres                 trust
host    all   all       127.0.0.1/32   md5
EOF
    "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$STATE/pgdata" -l "$STATE/logs/postgres.log" -w -t 60 \
        -o "-p $PG_PORT" start >/dev/null || die "PostgreSQL did not start: see $STATE/logs/postgres.log"
}

seed_postgres() {
    "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$STATE/pgsock" -p "$PG_PORT" -U postgres \
        -d postgres -f "$GATEWAY_FILES/seed.sql" >"$STATE/logs/seed-postgres.log" 2>&1 ||
        die "could not seed PostgreSQL: see $STATE/logs/seed-postgres.log"
}

stop_postgres() {
    if [ -f "$STATE/pgdata/postmaster.pid" ]; then
        "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$STATE/pgdata" -m fast -w stop >/dev/null 2>&1 || true
    fi
}

seed_s3() {
    # With the principal's own keys through the profile, as a user would (s3.py seed: the demo
    # CSV, and a lifecycle rule on the tempdir, which rsproxy's startup check looks for).
    # shellcheck source=/dev/null
    (. "$STATE/aws.env" && "$PYTHON" "$GATEWAY_FILES/s3.py" seed "$BUCKET") \
        >"$STATE/logs/seed-s3.log" 2>&1 || die "could not seed the S3 stand-in: see $STATE/logs/seed-s3.log"
}

# ---------------------------------------------------------------------------------------------
# The one cleanup path

cleanup() {
    local status=$?
    trap - INT TERM HUP EXIT
    if [ -n "$RSPROXY_PID" ]; then
        stop_pid "$RSPROXY_PID"
    fi
    local name
    for name in redshift s3 aws; do
        if [ -n "${PIDS[$name]:-}" ]; then
            stop_pid "${PIDS[$name]}"
        fi
    done
    stop_postgres
    if [ -z "${RSPROXY_GATEWAY_KEEP:-}" ]; then
        rm -rf "$STATE"
        say "stopped; removed $STATE"
    else
        rm -f "$STATE"/run/*.pid
        say "kept $STATE"
    fi
    exit "$status"
}
on_signal() {
    say "stopping"
    exit 0
}
trap cleanup EXIT
trap on_signal INT TERM HUP

make_tls
make_world
# In parallel where it is safe: the stand-ins take a second each to start. PostgreSQL binds its
# port before the S3 stand-in starts, because that one makes connections at startup (to its
# s3rver child), whose ephemeral source port could otherwise take PostgreSQL's.
start_aws
start_redshift
start_postgres
start_s3
seed_postgres
for name in aws s3 redshift; do
    wait_listening "$name"
done
# The S3 stand-in's s3rver child too, for a later run to find if this one is killed.
pgrep -P "${PIDS[s3]}" | head -n 1 >"$STATE/run/s3rver.pid" || true
seed_s3

INI=$STATE/rsproxy.ini
umask 077
cat >"$INI" <<EOF
; Written by tests/local-gateway.sh. AWS credentials come from the profile $PROFILE
; (AWS_PROFILE, AWS_CONFIG_FILE=$STATE/aws/config, AWS_SHARED_CREDENTIALS_FILE=$STATE/aws/credentials).
[proxy]
listen_addr = 127.0.0.1
listen_port = $PROXY_PORT
client_auth = trust
admin_addr = 127.0.0.1
admin_port = $ADMIN_PORT
log_level = info

[upstream]
; Temporary database credentials for each client's user (GetClusterCredentials: alice logs in
; as IAM:alice). No host: the cluster's endpoint comes from DescribeClusters.
auth = iam
host =
sslmode = verify-full
sslrootcert = $STATE/tls/ca.pem

[iam]
cluster_identifier = $CLUSTER

[s3]
; Added to every COPY and UNLOAD that names no credentials; relative locations go under tempdir.
aws_iam_role = $COPY_ROLE
tempdir = $TEMPDIR

[pool]
; A client that leaves between transactions hands its Redshift session back: reset with RESET ALL
; (Redshift has no DISCARD ALL) and given to the next client with the same startup packet.
pool_mode = session
server_reset_query = RESET ALL
EOF
umask 022

say "rsproxy on 127.0.0.1:$PROXY_PORT (IAM login to $CLUSTER, TLS verify-full, CA $STATE/tls/ca.pem)"
AWS_CONFIG_FILE=$STATE/aws/config AWS_SHARED_CREDENTIALS_FILE=$STATE/aws/credentials \
    AWS_PROFILE=$PROFILE AWS_EC2_METADATA_DISABLED=true "$BIN" -c "$INI" &
RSPROXY_PID=$!
echo "$RSPROXY_PID" >"$STATE/run/rsproxy.pid"
for _ in $(seq 100); do
    port_in_use "$PROXY_PORT" && break
    alive "$RSPROXY_PID" || die "rsproxy exited during startup"
    sleep 0.1
done
port_in_use "$PROXY_PORT" || die "rsproxy does not accept on port $PROXY_PORT"

# One login through the whole chain before saying it works: DescribeClusters, then
# GetClusterCredentials, then TLS to the Redshift stand-in and the password exchange.
PSQL_CONN="host=127.0.0.1 port=$PROXY_PORT dbname=dev user=alice"
if ! who=$(PGCONNECT_TIMEOUT=30 PGSSLMODE=disable "$PGBIN/psql" -X -At -d "$PSQL_CONN" \
    -c 'SELECT current_user' 2>"$STATE/logs/check.log"); then
    cat "$STATE/logs/check.log" >&2
    die "alice cannot log in through rsproxy (its log is above; the stand-ins' logs are in $STATE/logs)"
fi
say "checked: alice logs in through rsproxy as $who"

cat >&2 <<EOF

rsproxy is running. In another terminal:

    psql "$PSQL_CONN"

then try:

    SELECT current_user;
    COPY cities FROM 's3://$BUCKET/data/cities.csv' CSV IGNOREHEADER 1;
    SELECT * FROM cities ORDER BY id;
    UNLOAD ('SELECT * FROM cities ORDER BY id') TO 'exports/cities_' ALLOWOVERWRITE;

- current_user is IAM:alice: rsproxy got alice temporary credentials (GetClusterCredentials,
  profile $PROFILE) and logged in to the cluster it found with DescribeClusters, over TLS
  verified against $STATE/tls/ca.pem.
- Neither COPY nor UNLOAD names credentials: rsproxy adds IAM_ROLE '$COPY_ROLE',
  and the UNLOAD's relative location lands under the tempdir $TEMPDIR.
- SELECT kind, count(*) FROM events GROUP BY kind; and the view daily_revenue hold more data.
- SELECT pg_backend_pid(); then quit psql and start it again: the same number. rsproxy kept
  alice's session (session pooling, reset with RESET ALL) and gave it to the new psql without
  another login.

The S3 objects (boto3 with the same profile; \`. $STATE/aws.env\` sets it up for your shell):

    $STATE/s3 ls
    $STATE/s3 cat s3://$BUCKET/tmp/exports/cities_0000_part_00

Logs of the stand-ins: $STATE/logs. Ctrl-C stops rsproxy and the stand-ins and removes $STATE.
EOF
if [ "$ADMIN_PORT" != 0 ]; then
    cat >&2 <<EOF
Health and metrics: curl -s localhost:$ADMIN_PORT/readiness
                    curl -s localhost:$ADMIN_PORT/metrics | grep -v '^#'
EOF
fi
echo >&2

# Wait for rsproxy or any stand-in to end; a trapped signal interrupts the wait and exits
# through cleanup.
set +e
ended=
wait -n -p ended "$RSPROXY_PID" "${PIDS[@]}"
status=$?
set -e
if [ "$ended" = "$RSPROXY_PID" ]; then
    RSPROXY_PID=
    say "rsproxy exited with status $status"
    exit "$status"
fi
for name in aws s3 redshift; do
    if ! alive "${PIDS[$name]}"; then
        tail -n 20 "$STATE/logs/$name.log" >&2 || true
        say "the $name stand-in exited unexpectedly (the end of its log is above)"
    fi
done
exit 1
