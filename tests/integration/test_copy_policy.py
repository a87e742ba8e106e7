"""COPY and UNLOAD that carry their own authorization, through rsproxy: without policy keys they
pass unchanged and work or fail exactly as the Redshift stand-in decides (another attached
role, an unattached one, a chain, IAM_ROLE default, access keys, CREDENTIALS strings); with
[s3] allowed_iam_roles or allow_client_credentials = false rsproxy refuses them with SQLSTATE
42501 before they reach the server, and the session goes on exactly as if the server had
refused them: outside a transaction the next statement works, inside one the transaction is
aborted (25P02 until ROLLBACK), in a pipeline or batch the error arrives in its place and the
rest of the batch is skipped up to Sync. Clients: psycopg 3, psql, pgjdbc and raw protocol.
"""

import psycopg
import pytest
from psycopg import errors as pgerr

import pgwire
from fixtures_aws import PROXY_KEY, secret_of
from fixtures_copy import (BUCKET, CHAIN_ROLE, OTHER_BUCKET, OTHER_ROLE, ROLE, TEMPDIR,
                           UNATTACHED, connect, jdbc_run, psql)

CSV = "1,one,uno\n2,two,dos\n3,three,tres\n"
LOADED = [(1, "one", "uno"), (2, "two", "dos"), (3, "three", "tres")]
NOT_ALLOWED = "is not among rsproxy's allowed_iam_roles"
NO_KEYS = ("rsproxy does not allow statements that carry their own AWS credentials "
           "(allow_client_credentials = false)")


def secret(cx):
    return secret_of(cx.stack.world, PROXY_KEY)


def fails(conn, sql, **kw):
    with pytest.raises(psycopg.Error) as ei:
        conn.execute(sql, **kw)
    return ei.value


def copy_from(bucket, key, auth):
    return f"COPY t FROM 's3://{bucket}/{key}' {auth} CSV"


# ---------------------------------------------------------------------------------------------
# No policy keys: the client's own authorization passes byte for byte


def test_client_roles_pass_unchanged(cx):
    cx.put("in/data.csv", CSV, bucket=OTHER_BUCKET)
    cx.put("in/data.csv", CSV)
    p = cx.proxy()
    with connect(p) as c:
        # Another role attached to the cluster, with access to the other bucket only: the COPY
        # works only because rsproxy left the client's role alone (and added none: two
        # authorizations would be refused by Redshift).
        c.execute(copy_from(OTHER_BUCKET, "in/data.csv", f"IAM_ROLE '{OTHER_ROLE}'"))
        assert c.execute("SELECT count(*) FROM t").fetchone() == (3,)
        c.execute(f"UNLOAD ('select a from t order by a') TO 's3://{OTHER_BUCKET}/out/u_' "
                  f"iam_role '{OTHER_ROLE}' PARALLEL OFF")
        # A chain written by the client, and the cluster's default role.
        c.execute(copy_from(OTHER_BUCKET, "in/data.csv", f"IAM_ROLE '{ROLE},{CHAIN_ROLE}'"))
        c.execute(copy_from(BUCKET, "in/data.csv", "IAM_ROLE default"))
        c.execute(copy_from(BUCKET, "in/data.csv", f"WITH CREDENTIALS AS 'aws_iam_role={ROLE}'"))
        # A role that is not attached: Redshift's refusal, in Redshift's words.
        e = fails(c, copy_from(BUCKET, "in/data.csv", f"IAM_ROLE '{UNATTACHED}'"))
        assert e.sqlstate == "XX000"
        assert f"is not authorized to assume IAM Role {UNATTACHED}" in str(e), e
        # The role cannot read the other bucket: S3's Access Denied through Redshift.
        e = fails(c, copy_from(OTHER_BUCKET, "in/data.csv", f"IAM_ROLE '{ROLE}'"))
        assert "S3ServiceException:Access Denied,Status 403,Error AccessDenied" in str(e), e
    assert cx.get("out/u_000", bucket=OTHER_BUCKET) == b"1\n2\n3\n"
    assert cx.rows("SELECT count(*) FROM t") == [(12,)]
    assert "rewrote" not in p.log_text()
    assert cx.rs_log().count("auth=role") == 7


def test_client_keys_pass_unchanged(cx):
    cx.put("in/data.csv", CSV)
    p = cx.proxy(proxy={"log_level": "trace"})
    wrong = "wrongSecretKey000000000000000000000000000"
    p.secrets |= {secret(cx), wrong}
    with connect(p) as c:
        c.execute(copy_from(BUCKET, "in/data.csv",
                            f"ACCESS_KEY_ID '{PROXY_KEY}' SECRET_ACCESS_KEY '{secret(cx)}'"))
        c.execute(copy_from(BUCKET, "in/data.csv",
                            f"CREDENTIALS 'aws_access_key_id={PROXY_KEY};"
                            f"aws_secret_access_key={secret(cx)}'"))
        # A wrong secret reaches S3 as written: S3's signature error, through Redshift.
        e = fails(c, copy_from(BUCKET, "in/data.csv",
                               f"ACCESS_KEY_ID '{PROXY_KEY}' SECRET_ACCESS_KEY '{wrong}'"))
        assert "S3ServiceException:The request signature we calculated does not match" in \
            str(e), e
        # A lone key id is no authorization Redshift accepts, and rsproxy must not complete it.
        e = fails(c, copy_from(BUCKET, "in/data.csv", f"ACCESS_KEY_ID '{PROXY_KEY}'"))
        assert "Invalid credentials" in str(e), e
    assert cx.rows("SELECT count(*) FROM t") == [(6,)]
    assert cx.rs_log().count("auth=keys") == 3
    assert "rewrote" not in p.log_text()
    # (The fixture also checks at the end that neither secret is in rsproxy's log.)


def test_client_relative_location_with_own_role_is_resolved(cx):
    """A client's own authorization does not stop the tempdir resolution: only the location
    changes, the role stays the client's."""
    cx.put("in/data.csv", CSV, bucket=OTHER_BUCKET)
    p = cx.proxy(s3={"aws_iam_role": ROLE, "tempdir": f"s3://{OTHER_BUCKET}/"})
    with connect(p) as c:
        c.execute(f"COPY t FROM 'in/data.csv' IAM_ROLE '{OTHER_ROLE}' CSV")
    assert cx.rows() == LOADED
    assert f"COPY s3://{OTHER_BUCKET}/in/data.csv auth=role" in cx.rs_log()


# ---------------------------------------------------------------------------------------------
# allowed_iam_roles


def test_allowed_iam_roles(cx):
    cx.put("in/data.csv", CSV)
    cx.put("in/data.csv", CSV, bucket=OTHER_BUCKET)
    p = cx.proxy(s3={"aws_iam_role": ROLE, "tempdir": TEMPDIR, "allowed_iam_roles": OTHER_ROLE})
    with connect(p) as c:
        # The listed role, the configured one, and none at all (the configured one is added).
        c.execute(copy_from(OTHER_BUCKET, "in/data.csv", f"IAM_ROLE '{OTHER_ROLE}'"))
        c.execute(copy_from(BUCKET, "in/data.csv", f"IAM_ROLE '{ROLE}'"))
        c.execute(copy_from(BUCKET, "in/data.csv", ""))
        before = cx.rs_log().count("COPY ")
        for auth, shown in [
                (f"IAM_ROLE '{UNATTACHED}'", UNATTACHED),
                (f"IAM_ROLE '{OTHER_ROLE},{CHAIN_ROLE}'", CHAIN_ROLE),
                (f"CREDENTIALS 'aws_iam_role={UNATTACHED}'", UNATTACHED),
                ("iam_role DEFAULT", None)]:
            e = fails(c, copy_from(BUCKET, "in/data.csv", auth))
            assert e.sqlstate == "42501", e
            if shown:
                assert str(e) == f"COPY refused: IAM_ROLE '{shown}' {NOT_ALLOWED}", e
            else:
                assert str(e) == f"COPY refused: IAM_ROLE default {NOT_ALLOWED}", e
        e = fails(c, f"UNLOAD ('select 1') TO 'exports/x_' IAM_ROLE '{UNATTACHED}'")
        assert (e.sqlstate, str(e)) == ("42501", f"UNLOAD refused: IAM_ROLE '{UNATTACHED}' "
                                                 f"{NOT_ALLOWED}")
        # Whatever a client writes that is not an ARN is not repeated back to it.
        e = fails(c, copy_from(BUCKET, "in/data.csv", "IAM_ROLE 'not-a-role-but-a-secret'"))
        assert e.sqlstate == "42501" and "not-a-role-but-a-secret" not in str(e)
        # The session goes on (outside a transaction): the next statement works.
        assert c.execute("SELECT count(*) FROM t").fetchone() == (9,)
    # The refused statements never reached the server.
    assert cx.rs_log().count("COPY ") == before
    assert "UNLOAD" not in cx.rs_log()
    assert p.log_contains(r"statement refused sqlstate=42501")

    # "default" in the list lets clients write IAM_ROLE default.
    p2 = cx.proxy(s3={"aws_iam_role": OTHER_ROLE, "tempdir": TEMPDIR,
                      "allowed_iam_roles": f"default,{CHAIN_ROLE}"})
    with connect(p2) as c:
        c.execute(copy_from(BUCKET, "in/data.csv", "IAM_ROLE default"))
    assert cx.rows("SELECT count(*) FROM t") == [(12,)]


def test_allow_client_credentials_false(cx):
    cx.put("in/data.csv", CSV)
    cx.put("in/data.csv", CSV, bucket=OTHER_BUCKET)
    p = cx.proxy(s3={"aws_iam_role": ROLE, "tempdir": TEMPDIR,
                     "allow_client_credentials": False}, proxy={"log_level": "trace"})
    p.secrets.add(secret(cx))
    with connect(p) as c:
        for auth in [f"ACCESS_KEY_ID '{PROXY_KEY}' SECRET_ACCESS_KEY '{secret(cx)}'",
                     f"CREDENTIALS 'aws_access_key_id={PROXY_KEY};"
                     f"aws_secret_access_key={secret(cx)}'",
                     f"with credentials as 'aws_access_key_id={PROXY_KEY}'",
                     "CREDENTIALS 'garbage'"]:
            e = fails(c, copy_from(BUCKET, "in/data.csv", auth))
            assert (e.sqlstate, str(e)) == ("42501", f"COPY refused: {NO_KEYS}"), auth
            assert secret(cx) not in str(e)
        e = fails(c, "UNLOAD ('select 1') TO 'exports/k_' "
                     f"ACCESS_KEY_ID '{PROXY_KEY}' SECRET_ACCESS_KEY '{secret(cx)}'")
        assert (e.sqlstate, str(e)) == ("42501", f"UNLOAD refused: {NO_KEYS}")
        # Roles are still the client's choice (no allowed_iam_roles here).
        c.execute(copy_from(OTHER_BUCKET, "in/data.csv",
                            f"CREDENTIALS 'aws_iam_role={OTHER_ROLE}'"))
        c.execute(copy_from(BUCKET, "in/data.csv", ""))
    assert cx.rows("SELECT count(*) FROM t") == [(6,)]
    assert "auth=keys" not in cx.rs_log()


# ---------------------------------------------------------------------------------------------
# After a refusal the session continues, with PostgreSQL's transaction semantics

REFUSED = f"COPY t FROM 's3://{BUCKET}/in/data.csv' IAM_ROLE '{UNATTACHED}' CSV"
POLICY = {"aws_iam_role": ROLE, "tempdir": TEMPDIR, "allowed_iam_roles": OTHER_ROLE}


def test_refusal_inside_a_transaction_aborts_it(cx):
    cx.put("in/data.csv", CSV)
    p = cx.proxy(s3=POLICY)
    with connect(p, autocommit=False) as c:
        c.execute("INSERT INTO t VALUES (100, 'x', 'y')")
        e = fails(c, REFUSED)
        assert isinstance(e, pgerr.InsufficientPrivilege), e
        assert isinstance(fails(c, "SELECT 1"), pgerr.InFailedSqlTransaction)
        # The refused statement again, in the aborted transaction: still the policy's answer
        # (as PostgreSQL reports a syntax error before the aborted state), still aborted.
        assert isinstance(fails(c, REFUSED), pgerr.InsufficientPrivilege)
        assert isinstance(fails(c, copy_from(BUCKET, "in/data.csv", "")),
                          pgerr.InFailedSqlTransaction)
        c.rollback()
        assert c.execute("SELECT count(*) FROM t").fetchone() == (0,)
        c.execute(copy_from(BUCKET, "in/data.csv", ""))
        c.commit()
    assert cx.rows() == LOADED

    # The same script through psql without ON_ERROR_STOP, errors in order with SQLSTATEs.
    r = psql(p, args=["-v", "ON_ERROR_STOP=0", "-v", "VERBOSITY=verbose", "-f", "-"],
             stdin="BEGIN;\nINSERT INTO t VALUES (200, 'p', 'q');\n" + REFUSED + ";\n"
                   "SELECT 'in aborted';\nROLLBACK;\nSELECT 'after ' || count(*) FROM t;\n",
             check=False)
    errors = [line for line in r.stderr.splitlines() if line.startswith("psql:") or
              line.startswith("ERROR")]
    assert len(errors) == 2, r.stderr
    assert "ERROR:  42501: COPY refused" in errors[0], r.stderr
    assert "ERROR:  25P02: current transaction is aborted" in errors[1], r.stderr
    assert r.stdout.split() == ["BEGIN", "INSERT", "0", "1", "ROLLBACK", "after", "3"], r.stdout


def test_refusal_in_a_multi_statement_query(cx):
    """A refused statement refuses its whole Query message: nothing of it runs (PostgreSQL
    would roll the implicit transaction back anyway), and the session goes on."""
    p = cx.proxy(s3=POLICY)
    with connect(p) as c:
        e = fails(c, f"INSERT INTO t VALUES (1, 'a', 'b'); {REFUSED}; "
                     "INSERT INTO t VALUES (2, 'c', 'd')")
        assert e.sqlstate == "42501"
        assert c.execute("SELECT count(*) FROM t").fetchone() == (0,)


def raw_login(p):
    c = pgwire.RawConn("127.0.0.1", p.port, timeout=60)
    c.login("alice", "dev", timeout=60)
    return c


def until_ready(c):
    out = []
    while True:
        m = c.recv_msg(60)
        out.append(m)
        if m.type == b"Z":
            return out


def pbe(sql, name=""):
    return pgwire.parse(name, sql) + pgwire.bind("", name) + pgwire.execute()


def test_refusal_in_an_extended_batch_arrives_in_order(cx):
    cx.put("in/data.csv", CSV)
    p = cx.proxy(s3=POLICY)
    with raw_login(p) as c:
        # One batch: a SELECT, the refused COPY, another SELECT, one Sync. The server answers
        # the first, fails the second in its place, skips the third.
        c.send(pbe("SELECT 1") + pbe(REFUSED) + pbe("SELECT 2") + pgwire.sync())
        got = until_ready(c)
        assert [m.type for m in got] == [b"1", b"2", b"D", b"C", b"E", b"Z"], got
        assert got[4].sqlstate == "42501" and NOT_ALLOWED in got[4].fields()["M"]
        assert got[5].body == b"I"
        # Three Syncs in one write, refusals first and last: each error in its own round.
        c.send(pbe(REFUSED) + pgwire.sync() +
               pbe(copy_from(BUCKET, "in/data.csv", "")) + pgwire.sync() +
               pbe(REFUSED.replace("COPY t", "COPY t2")) + pgwire.sync() +
               pbe("SELECT count(*) FROM t") + pgwire.sync())
        rounds = [until_ready(c) for _ in range(4)]
        assert [m.type for m in rounds[0]] == [b"E", b"Z"]
        assert rounds[0][0].sqlstate == "42501"
        assert [m.type for m in rounds[1]] == [b"1", b"2", b"N", b"C", b"Z"], rounds[1]
        assert [m.type for m in rounds[2]] == [b"E", b"Z"]
        assert rounds[2][0].sqlstate == "42501"
        assert pgwire.parse_datarow(rounds[3][2].body) == ["3"]
        # A refused named statement does not exist afterwards, as if its Parse had failed.
        c.send(pgwire.parse("bad", REFUSED) + pgwire.sync())
        got = until_ready(c)
        assert [m.type for m in got] == [b"E", b"Z"] and got[0].sqlstate == "42501"
        c.send(pgwire.bind("", "bad") + pgwire.execute() + pgwire.sync())
        got = until_ready(c)
        assert got[0].sqlstate == "26000", got  # prepared statement "bad" does not exist
        # Inside an explicit transaction the refusal aborts it until ROLLBACK.
        c.send(pbe("BEGIN") + pbe(REFUSED) + pgwire.sync())
        got = until_ready(c)
        assert [m.type for m in got][-2:] == [b"E", b"Z"] and got[-1].body == b"E"
        c.send(pbe("SELECT 1") + pgwire.sync())
        got = until_ready(c)
        assert got[0].sqlstate == "25P02" and got[-1].body == b"E"
        c.send(pgwire.query("ROLLBACK; SELECT 'ok'"))
        rows, tags, errs = c.collect(60)
        assert (rows, errs) == ([["ok"]], [])
        c.send(pgwire.terminate())


def test_refusal_in_a_psycopg_pipeline(cx):
    p = cx.proxy(s3=POLICY)
    with connect(p) as c:
        with pytest.raises(pgerr.InsufficientPrivilege):
            with c.pipeline():
                first = c.execute("SELECT 1")
                c.execute(REFUSED)
                c.execute("INSERT INTO t VALUES (5, 'e', 'f')")
        assert first.fetchone() == (1,)
        assert c.execute("SELECT count(*) FROM t").fetchone() == (0,)


def test_refusal_in_a_pgjdbc_batch(cx, copy_jdbc_classes, workdir):
    cx.put("in/data.csv", CSV)
    p = cx.proxy(s3=POLICY)
    r = jdbc_run(copy_jdbc_classes, p, [
        ("batch", f"INSERT INTO t2 VALUES (1, 'a', 'b')\n{REFUSED}\n"
                  "INSERT INTO t2 VALUES (2, 'c', 'd')"),
        ("query", "SELECT count(*) FROM t2"),
        ("begin", ""),
        ("exec", "INSERT INTO t2 VALUES (3, 'e', 'f')"),
        ("prep", REFUSED),
        ("exec", "SELECT 1"),
        ("rollback", ""),
        ("exec", copy_from(BUCKET, "in/data.csv", "")),
        ("query", "SELECT count(*) FROM t"),
    ], workdir)
    assert r.err(0)[0] == "42501"
    assert r.rows[1] == [("0",)]  # the batch's implicit transaction was rolled back
    assert r.err(4)[0] == "42501" and NOT_ALLOWED in r.err(4)[1]
    assert r.err(5)[0] == "25P02"
    r.ok(6)
    r.ok(7)
    assert r.rows[8] == [("3",)]
    assert cx.rows("SELECT count(*) FROM t2") == [(0,)]


def test_many_refusals_in_one_batch(cx):
    """A batch (one Sync) of more refused statements than rsproxy tracks at once: the server
    fails the first and skips the rest, so the client sees one 42501 and the session goes on,
    as it would had the server refused them itself."""
    p = cx.proxy(s3=POLICY)
    with raw_login(p) as c:
        c.send(b"".join(pbe(REFUSED) for _ in range(40)) + pgwire.sync())
        got = until_ready(c)
        assert [m.type for m in got] == [b"E", b"Z"], got
        assert got[0].sqlstate == "42501"
        # Forty rounds, each with its own Sync, sent in one write.
        c.send((pbe(REFUSED) + pgwire.sync()) * 40)
        for _ in range(40):
            got = until_ready(c)
            assert [m.type for m in got] == [b"E", b"Z"] and got[0].sqlstate == "42501", got
        c.send(pgwire.query("SELECT 'still here'"))
        rows, _, errs = c.collect(60)
        assert (rows, errs) == ([["still here"]], [])
