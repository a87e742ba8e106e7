"""COPY and UNLOAD through rsproxy at the edges: forward_s3_credentials (the proxy's own AWS
keys, long-term or temporary, injected instead of a role and never logged, even at trace),
statements larger than the read buffer (rewritten all the same, through psycopg's simple and
prepared paths and psql), statements larger than [proxy] max_statement_size (refused with 54000,
the session continuing), the documented limit for large multi-statement Queries, and a proxy
without [s3] settings, whose COPY reaches the Redshift stand-in unchanged and is refused there
in Redshift's words.
"""

import os
import re
import time

import psycopg
import pytest
from psycopg import errors as pgerr

import pgwire
from fixtures_aws import PROXY_KEY, secret_of
from fixtures_copy import (APP_ROLE, BUCKET, EU_BUCKET, INVALID_CREDS, OTHER_ROLE, ROLE, TEMPDIR,
                           connect, psql, wait_for)
from test_copy_policy import raw_login

CSV = "1,one,uno\n2,two,dos\n3,three,tres\n"
LOADED = [(1, "one", "uno"), (2, "two", "dos"), (3, "three", "tres")]
S3_LINE = re.compile(r" (GetObject|ListObjectsV2|PutObject|HeadObject|DeleteObjects?) "
                     r"(\S*) akid=(\S+) -> (\d+)")


def s3_requests(cx):
    """(operation, bucket/key, access key id, status) of every S3 request during the test."""
    return [m.groups() for m in S3_LINE.finditer(cx.s3_log())]


def fails(conn, sql, **kw):
    with pytest.raises(psycopg.Error) as ei:
        conn.execute(sql, **kw)
    return ei.value


# ---------------------------------------------------------------------------------------------
# forward_s3_credentials

FORWARD = {"forward_s3_credentials": True, "tempdir": TEMPDIR}


def forward_checks(cx, p):
    """COPY and UNLOAD with the proxy's keys: they work and the Redshift stand-in got keys (not
    a role). Returns the one access key id that signed the stand-in's S3 requests."""
    p.wait_for_log(r"forward_s3_credentials: AWS credentials ready", timeout=30)
    cx.put("in/data.csv", CSV)
    with connect(p) as c:
        c.execute(f"COPY t FROM 's3://{BUCKET}/in/data.csv' CSV")
        c.execute("UNLOAD ('select a, b from t order by a') TO 'exports/f_' PARALLEL OFF",
                  prepare=True)
    # The requests the stand-in made for the COPY (reads under in/) and the UNLOAD (writes
    # under tmp/exports/), before the test reads anything itself.
    made = [r for r in s3_requests(cx) if r[0] != "PutObject" or r[1].startswith(
        f"{BUCKET}/tmp/exports/f_")]
    used = {r[2] for r in made}
    assert len(used) == 1, made
    assert {r[0] for r in made} >= {"ListObjectsV2", "GetObject", "PutObject"}, made
    assert cx.rows() == LOADED
    assert cx.get("tmp/exports/f_000") == b"1|one\n2|two\n3|three\n"
    log = cx.rs_log()
    assert f"COPY s3://{BUCKET}/in/data.csv auth=keys" in log, log
    assert f"UNLOAD {TEMPDIR}exports/f_ auth=keys" in log, log
    assert "auth=role" not in log
    assert "rewrote 1 COPY/UNLOAD statement(s)" in p.log_text()
    return used.pop()


def assert_not_logged(cx, p, *secrets_):
    for s in secrets_:
        assert s
        assert s not in p.log_text(), "a forwarded secret is in rsproxy's log"
        assert s not in cx.stack.redshift.log_text(), "a forwarded secret is in a stand-in log"
        assert s not in cx.stack.s3.log_text(), "a forwarded secret is in a stand-in log"
        p.secrets.add(s)  # and the fixture checks again after SIGTERM


def test_forward_long_term_keys(cx):
    p = cx.proxy(s3=FORWARD, proxy={"log_level": "trace"})
    assert forward_checks(cx, p) == PROXY_KEY
    assert_not_logged(cx, p, secret_of(cx.stack.world, PROXY_KEY))
    # The log says what kind of keys it holds, never the keys.
    assert p.log_contains(r"forward_s3_credentials: AWS credentials ready \(.*long-term\)")


def test_forward_temporary_keys_from_an_assumed_role(cx):
    """The proxy's identity is a role assumed through a profile: its temporary keys (with a
    session token) go into the statement, and S3 checks them against that role."""
    p = cx.proxy(s3=FORWARD, proxy={"log_level": "trace"}, aws_keys=False, start=False,
                 env={"AWS_PROFILE": "app"})
    with open(os.path.join(p.aws_dir, "credentials"), "w") as f:
        f.write(f"[base]\naws_access_key_id = {PROXY_KEY}\n"
                f"aws_secret_access_key = {secret_of(cx.stack.world, PROXY_KEY)}\n")
    with open(os.path.join(p.aws_dir, "config"), "w") as f:
        f.write(f"[profile app]\nrole_arn = {APP_ROLE}\nsource_profile = base\n"
                "role_session_name = rsproxy-copy-e2e\n")
    cx.start(p)
    p.wait_for_log(r"forward_s3_credentials: AWS credentials ready", timeout=30)
    assert p.log_contains(r"forward_s3_credentials: AWS credentials ready \(.*temporary\)")
    # The key that signed the S3 requests is a temporary key of the app role.
    doc = cx.stack.aws.key(forward_checks(cx, p))
    assert doc["role_arn"] == APP_ROLE and doc["session_token"], doc
    assert_not_logged(cx, p, doc["secret"], doc["session_token"])


def test_forward_short_lived_keys_are_renewed_quietly(cx):
    """Temporary keys with 10 minutes left are inside rsproxy's 15-minute renewal window from
    the start: it keeps asking the chain, which answers from its cache while it renews in the
    background (at most every 30 s). Those repeated answers carry the keys rsproxy holds and
    must not each log a line (once a second, before this was fixed); COPY works meanwhile."""
    cx.stack.aws.patch_world({"lifetimes": {"sts": 600}})
    try:
        p = cx.proxy(s3=FORWARD, aws_keys=False, start=False, env={"AWS_PROFILE": "app"})
        with open(os.path.join(p.aws_dir, "credentials"), "w") as f:
            f.write(f"[base]\naws_access_key_id = {PROXY_KEY}\n"
                    f"aws_secret_access_key = {secret_of(cx.stack.world, PROXY_KEY)}\n")
        with open(os.path.join(p.aws_dir, "config"), "w") as f:
            f.write(f"[profile app]\nrole_arn = {APP_ROLE}\nsource_profile = base\n"
                    "role_session_name = rsproxy-short\n")
        cx.start(p)
        p.wait_for_log(r"forward_s3_credentials: AWS credentials ready", timeout=30)
        time.sleep(6)
        ready = re.findall(r"forward_s3_credentials: AWS credentials ready", p.log_text())
        assert 1 <= len(ready) <= 2, p.log_tail()
        doc = cx.stack.aws.key(forward_checks(cx, p))
        assert doc["role_arn"] == APP_ROLE, doc
    finally:
        cx.stack.aws.patch_world({"lifetimes": {"sts": None}})


def test_forward_refuses_what_keys_cannot_do(cx):
    p = cx.proxy(s3=FORWARD)
    p.wait_for_log(r"forward_s3_credentials: AWS credentials ready", timeout=30)
    with connect(p) as c:
        # Columnar formats take roles only: Redshift's own refusal of the injected keys.
        e = fails(c, f"COPY t FROM 's3://{BUCKET}/in/p.parquet' FORMAT AS PARQUET")
        assert "COPY from this file format only accepts IAM_ROLE credentials." in str(e), e
        # A literal with \' escapes: rsproxy will not place its keys where another reading of
        # the quotes could put them inside the client's literal.
        e = fails(c, "UNLOAD ('select \\'x\\'') TO 'exports/q_' PARALLEL OFF")
        assert e.sqlstate == "22023" and "\\' escapes" in str(e), e
        # The client's own role still passes as written.
        cx.put("in/data.csv", CSV, bucket="rsproxy-other")
        c.execute(f"COPY t FROM 's3://rsproxy-other/in/data.csv' IAM_ROLE '{OTHER_ROLE}' CSV")
        assert c.execute("SELECT count(*) FROM t").fetchone() == (3,)


# ---------------------------------------------------------------------------------------------
# Statements larger than the read buffer (16 KiB by default)


def big_comment(n):
    return "/* " + ("padding " * (n // 8)) + " */"


def test_large_copy_is_rewritten(cx):
    cx.put("tmp/in/data.csv", CSV)
    p = cx.proxy()
    pad = big_comment(200_000)
    with connect(p) as c:
        # The comment after the keyword, between keyword and location, or before the COPY
        # (where rsproxy cannot tell from the first bytes what the message is).
        c.execute(f"COPY t {pad} FROM 'in/data.csv' CSV")
        c.execute(f"COPY t FROM 'in/data.csv' {pad} CSV", prepare=True)
        c.execute(f"{pad} COPY t FROM 'in/data.csv' CSV")
        c.execute(f"{pad}\n{pad} COPY t FROM 'in/data.csv' CSV", prepare=True)
        assert c.execute("SELECT count(*) FROM t").fetchone() == (12,)
    # psql reads the statement from a script (an argument this long is over execve's limit)
    # and sends it as one Query.
    r = psql(p, args=["-f", "-"], stdin=f"COPY t2 FROM 'in/data.csv' {pad} CSV;\n")
    assert r.stdout.strip() == "COPY"
    assert cx.rows("SELECT count(*) FROM t2") == [(3,)]
    assert cx.rs_log().count(f"COPY {TEMPDIR}in/data.csv auth=role") == 5


def test_large_unload_query_is_rewritten(cx):
    cx.load([(i, f"v{i}", None) for i in range(1, 6)])
    p = cx.proxy()
    # A 200 KB UNLOAD: the query's IN list is long.
    excluded = ",".join(str(i) for i in range(10, 40_000))
    sql = (f"UNLOAD ('select a from t where a not in ({excluded}) order by a') "
           "TO 'exports/big_' PARALLEL OFF")
    assert len(sql) > 190_000
    with connect(p) as c:
        c.execute(sql)
        c.execute(sql + " ALLOWOVERWRITE", prepare=True)
    assert cx.get("tmp/exports/big_000") == b"1\n2\n3\n4\n5\n"


def test_statement_over_max_statement_size_is_refused(cx):
    cx.put("tmp/in/data.csv", CSV)
    p = cx.proxy(proxy={"max_statement_size": "65536"})
    pad = big_comment(100_000)
    with connect(p) as c:
        e = fails(c, f"COPY t FROM 'in/data.csv' {pad} CSV")
        assert e.sqlstate == "54000", e
        assert "statement too large for rsproxy to check or rewrite" in str(e)
        assert "max_statement_size is 65536" in str(e)
        # The session goes on.
        assert c.execute("SELECT 1").fetchone() == (1,)
        # Under the limit (but over the 16 KiB read buffer) it is rewritten as usual.
        c.execute(f"COPY t FROM 'in/data.csv' {big_comment(40_000)} CSV")
        # Statements that are not COPY or UNLOAD are relayed whatever their size.
        text = "x" * 300_000
        assert c.execute(f"SELECT length('{text}')").fetchone() == (300_000,)
        assert c.execute(f"SELECT length('{text}')", prepare=True).fetchone() == (300_000,)
    with connect(p, autocommit=False) as c:
        c.execute("INSERT INTO t VALUES (9, 'n', 'n')")
        assert isinstance(fails(c, f"COPY t FROM 'in/data.csv' {pad} CSV"),
                          pgerr.ProgramLimitExceeded)
        assert isinstance(fails(c, "SELECT 1"), pgerr.InFailedSqlTransaction)
        c.rollback()
        assert c.execute("SELECT count(*) FROM t").fetchone() == (3,)
    assert cx.rs_log().count("COPY ") == 1


def test_large_query_under_a_policy(cx):
    """Under a policy (allowed_iam_roles), a Query over max_statement_size whose first keyword
    is not COPY or UNLOAD cannot be held whole. Its first max_statement_size bytes decide:
    without "copy" or "unload" in them it streams on (a bulk INSERT works), with them it is
    refused like any statement over the limit and the session goes on. If the words show up
    only further in, part of the Query is already with Redshift: the session ends with 54000
    and Redshift never gets the end of the message, so nothing of it runs."""
    policy = {"aws_iam_role": ROLE, "tempdir": TEMPDIR, "allowed_iam_roles": OTHER_ROLE}
    p = cx.proxy(s3=policy, proxy={"max_statement_size": "65536"})
    rows = ",".join(f"({i}, 'r{i}', '{'z' * 40}')" for i in range(4000))
    assert len(rows) > 3 * 65536
    with connect(p) as c:
        c.execute(f"INSERT INTO t VALUES {rows}")
        assert c.execute("SELECT count(*) FROM t").fetchone() == (4000,)
        e = fails(c, f"INSERT INTO t VALUES (0, 'copy', 'x'), {rows}")
        assert e.sqlstate == "54000" and "max_statement_size is 65536" in str(e), e
        assert c.execute("SELECT count(*) FROM t").fetchone() == (4000,)
        # A FATAL error, then the close: psycopg 3 raises from PQconsumeInput ("consuming
        # input failed: <the message>"), which carries no SQLSTATE (the raw test below sees it).
        e = fails(c, f"INSERT INTO t VALUES {rows}, (0, 'Copy', 'x')")
        assert "statement too large for rsproxy to check" in str(e), e
        assert "the session is closed and nothing of the Query ran" in str(e), e
        assert e.sqlstate in ("54000", None), e
        assert c.broken or c.closed
    # The word early in a 15 MB Query, more than the socket buffers hold: rsproxy gives up
    # while the client is still sending. It drains the rest of the message before its FIN
    # (closing with unread input sends an RST, which fails the client's send, and a client
    # that stops at a failed send never reads the ErrorResponse), so a client that sends the
    # whole message and then reads gets the error, and then the close.
    tail = ", ".join([rows] * 64)
    with raw_login(p) as rc:
        rc.send(pgwire.query(f"INSERT INTO t VALUES {rows}, (0, 'copy', 'x'), {tail}"))
        msgs = rc.wait_closed(30)
        assert [m.type for m in msgs] == [b"E"], msgs
        assert msgs[0].fields()["C"] == "54000", msgs[0].fields()
        assert "nothing of the Query ran" in msgs[0].fields()["M"]
    # A COPY hidden behind 100 KB of other statement, with a role the policy refuses.
    with connect(p) as c:
        e = fails(c, f"SELECT length('{'x' * 100_000}'); "
                     f"COPY t FROM 'in/data.csv' IAM_ROLE '{APP_ROLE}' CSV")
        assert "the session is closed and nothing of the Query ran" in str(e), e
    with connect(p) as c:
        assert c.execute("SELECT count(*) FROM t").fetchone() == (4000,)
    assert "COPY " not in cx.rs_log()


def test_parse_over_max_statement_size_is_refused(cx):
    """The same refusal for a Parse message (psycopg prepare=True): 54000, and the session
    and the named statement's absence behave as after a failed Parse."""
    p = cx.proxy(proxy={"max_statement_size": "65536"})
    pad = big_comment(100_000)
    with connect(p) as c:
        e = fails(c, f"COPY t FROM 'in/data.csv' {pad} CSV", prepare=True)
        assert e.sqlstate == "54000", e
        assert "max_statement_size is 65536" in str(e)
        assert c.execute("SELECT 1").fetchone() == (1,)
        e = fails(c, f"UNLOAD ('select 1 {pad}') TO 'exports/x_'", prepare=True)
        assert e.sqlstate == "54000", e
        assert c.execute("SELECT 2", prepare=True).fetchone() == (2,)
    assert "auth=" not in cx.rs_log()


def test_large_multi_statement_query(cx):
    """The documented limit (px_intercept.c): a Query larger than the read buffer whose first
    statement is not COPY/UNLOAD is relayed as it streams, without looking at later
    statements, unless a policy key is set; then it is collected and checked (and rewritten)
    whole, so a COPY further in cannot escape the policy."""
    cx.put("tmp/in/data.csv", CSV)
    filler = "x" * 40_000
    text = f"SELECT length('{filler}'); COPY t FROM 'in/data.csv' CSV"
    p = cx.proxy()
    with connect(p) as c:
        e = fails(c, text)
        # Not rewritten: the relative location and no authorization reach the stand-in.
        assert INVALID_CREDS in str(e), e
        # The same statements in a small Query are rewritten.
        c.execute("SELECT 1; COPY t FROM 'in/data.csv' CSV")
    assert cx.rows() == LOADED

    policy = {"aws_iam_role": ROLE, "tempdir": TEMPDIR, "allowed_iam_roles": OTHER_ROLE}
    p2 = cx.proxy(s3=policy)
    with connect(p2) as c:
        cur = c.execute(text)
        assert cur.nextset() and cur.statusmessage == "COPY"
        e = fails(c, f"SELECT length('{filler}'); "
                     f"COPY t FROM 'in/data.csv' IAM_ROLE '{APP_ROLE}' CSV")
        assert e.sqlstate == "42501", e
    assert cx.rows("SELECT count(*) FROM t") == [(6,)]


def test_policy_keys_and_queries_over_max_statement_size(cx):
    """With a policy key set, a simple Query larger than max_statement_size cannot be checked
    whole (a COPY could follow the first statement): one that does not start with COPY or
    UNLOAD passes when "copy" and "unload" are nowhere in it (see test_large_query_under_a_policy
    for when they are); one that starts with COPY is refused. A Parse holds one statement and is
    judged by its first keyword, so a large SELECT passes there in any case."""
    policy = {"aws_iam_role": ROLE, "tempdir": TEMPDIR, "allow_client_credentials": False}
    p = cx.proxy(s3=policy, proxy={"max_statement_size": "65536"})
    text = "x" * 100_000
    with connect(p) as c:
        assert c.execute(f"SELECT length('{text}')").fetchone() == (100_000,)
        assert c.execute(f"SELECT length('{text}')", prepare=True).fetchone() == (100_000,)
        e = fails(c, f"COPY t FROM 'in/data.csv' /* {text} */ CSV")
        assert e.sqlstate == "54000" and "max_statement_size is 65536" in str(e), e
        assert c.execute("SELECT 1").fetchone() == (1,)


def test_tempdir_region(cx):
    """A tempdir bucket in another region than the cluster: [s3] tempdir_region is documented
    as the REGION of COPY and UNLOAD, so a location resolved under tempdir must reach Redshift
    with it (spark-redshift adds REGION AS '<tempdir_region>' the same way); a client that
    writes REGION itself must not end up with two."""
    cx.put("tmp/in/data.csv", CSV, bucket=EU_BUCKET)
    p = cx.proxy(s3={"aws_iam_role": ROLE, "tempdir": f"s3://{EU_BUCKET}/tmp/",
                     "tempdir_region": "eu-west-1"})
    with connect(p) as c:
        # The setup works when the client says where the bucket is.
        c.execute("COPY t FROM 'in/data.csv' REGION 'eu-west-1' CSV")
        assert c.execute("SELECT count(*) FROM t").fetchone() == (3,)
        # And must work when it does not: tempdir_region is rsproxy's to add.
        c.execute("COPY t FROM 'in/data.csv' CSV")
        c.execute("UNLOAD ('select a from t order by a') TO 'exports/eu_' PARALLEL OFF")
    assert cx.rows("SELECT count(*) FROM t") == [(6,)]
    assert cx.get("tmp/exports/eu_000", bucket=EU_BUCKET) == b"1\n1\n2\n2\n3\n3\n"


# ---------------------------------------------------------------------------------------------
# Without [s3] settings nothing is injected


def test_no_s3_settings_no_injection(cx):
    cx.put("in/data.csv", CSV)
    p = cx.proxy(s3={})
    with connect(p) as c:
        for sql in (f"COPY t FROM 's3://{BUCKET}/in/data.csv' CSV",
                    f"copy t from 's3a://{BUCKET}/in/data.csv' csv",
                    "UNLOAD ('select 1') TO 's3://rsproxy-test/exports/n_'"):
            for prepare in (False, True):
                e = fails(c, sql, prepare=prepare)
                assert (e.sqlstate, str(e).splitlines()[0]) == ("XX000", INVALID_CREDS), e
        # A relative location stays relative: Redshift does not know what to load.
        e = fails(c, f"COPY t FROM 'in/data.csv' IAM_ROLE '{ROLE}' CSV")
        assert "LOAD source is not supported" in str(e), e
        assert c.execute("SELECT count(*) FROM t").fetchone() == (0,)
    log = p.log_text()
    assert "rewrote" not in log and "refused" not in log
    assert "auth=" not in cx.rs_log()
    assert cx.keys("exports/") == []


def test_sighup_applies_s3_settings_to_new_sessions(cx):
    """[s3] keys are reloadable: after SIGHUP new sessions are rewritten with the new settings;
    a session that started before keeps the snapshot it started with."""
    cx.put("tmp/in/data.csv", CSV)
    p = cx.proxy(s3={})
    with connect(p) as old:
        e = fails(old, "COPY t FROM 'in/data.csv' CSV")
        assert INVALID_CREDS in str(e), e
        p.config["s3"].update({"aws_iam_role": ROLE, "tempdir": TEMPDIR})
        p.reload(p.config)
        p.wait_for_log(r"reload", timeout=10)

        def new_session_rewrites():
            with connect(p) as c:
                try:
                    c.execute("COPY t FROM 'in/data.csv' CSV")
                    return True
                except psycopg.Error:
                    return False
        wait_for(new_session_rewrites, timeout=10, what="a new session to be rewritten")
        e = fails(old, "COPY t FROM 'in/data.csv' CSV")
        assert INVALID_CREDS in str(e), e
    assert cx.rows() == LOADED
