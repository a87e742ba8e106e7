#!/bin/bash
# Run once by the postgres image's entrypoint on a fresh data directory: the data behind the
# Redshift stand-in (seed.sql, shared with tests/local-gateway.sh), the cluster's admin user
# "demo" (Redshift's master user) owning it, and pg_hba.conf:
#   - the superuser over TLS only, with its password (the AWS stand-in's admin connection,
#     which sets the passwords it mints);
#   - everyone else with md5 (which also runs SCRAM for SCRAM-stored secrets) in plain TCP
#     from the Redshift stand-in, which relays each client's password exchange: over TLS,
#     PostgreSQL would offer SCRAM-SHA-256-PLUS, bound to a certificate the client never sees.
# The port is not published: only the compose network reaches it.
set -euo pipefail
psql -v ON_ERROR_STOP=1 -U postgres -d postgres -f /gateway-seed/seed.sql
# psql reads the password file itself, so the password never appears on a command line.
psql -v ON_ERROR_STOP=1 -U postgres -d dev <<'SQL'
\set pw `cat /gateway/demo-password.postgres`
SET password_encryption = 'md5';
CREATE ROLE demo LOGIN CREATEROLE PASSWORD :'pw';
ALTER DATABASE dev OWNER TO demo;
ALTER TABLE events OWNER TO demo;
ALTER TABLE cities OWNER TO demo;
ALTER VIEW daily_revenue OWNER TO demo;
SQL
cat >"$PGDATA/pg_hba.conf" <<'HBA'
local   all   all                      trust
hostssl all   postgres   0.0.0.0/0     scram-sha-256
host    all   postgres   0.0.0.0/0     reject
host    all   all        0.0.0.0/0     md5
HBA
