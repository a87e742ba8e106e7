#!/bin/bash
# Run once by the postgres image's entrypoint on a fresh data directory: the demo role and
# data, and pg_hba.conf allowing TCP only over TLS with SCRAM.
set -euo pipefail
# psql reads the password file itself, so the password never appears on a command line.
psql -v ON_ERROR_STOP=1 -U postgres -d postgres <<'SQL'
\set pw `cat /gateway/demo-password.postgres`
SET password_encryption = 'scram-sha-256';
CREATE ROLE demo LOGIN PASSWORD :'pw';
CREATE DATABASE demo OWNER demo;
SQL
psql -v ON_ERROR_STOP=1 -U postgres -d demo <<'SQL'
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
SQL
cat >"$PGDATA/pg_hba.conf" <<'HBA'
local   all   all                  trust
hostssl all   all   0.0.0.0/0      scram-sha-256
HBA
