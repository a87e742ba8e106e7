-- The data behind the local gateway's "Redshift" (tests/local-gateway.sh and
-- docker/compose.yaml), run by psql as the PostgreSQL superuser on a fresh cluster.
--
-- Redshift names database users who log in with IAM credentials IAM:<user>; the AWS stand-in
-- gives IAM:alice a password that expires (VALID UNTIL) each time rsproxy calls
-- GetClusterCredentials for alice. The Redshift stand-in runs COPY and UNLOAD on alice's own
-- session, so her grants decide what they may read and write.
\set ON_ERROR_STOP on
CREATE DATABASE dev;
\connect dev

CREATE ROLE "IAM:alice" LOGIN;
GRANT USAGE, CREATE ON SCHEMA public TO "IAM:alice";

CREATE TABLE events (
    id         int PRIMARY KEY,
    happened   timestamptz NOT NULL,
    kind       varchar(16) NOT NULL,
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

-- Empty: the gateway's "try this" COPY loads it from s3://rsproxy-demo/data/cities.csv.
CREATE TABLE cities (
    id         int,
    city       varchar(40),
    country    char(2),
    population bigint
);

GRANT SELECT ON events, daily_revenue TO "IAM:alice";
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON cities TO "IAM:alice";
