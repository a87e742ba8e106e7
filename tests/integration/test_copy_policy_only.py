"""[s3] policy keys on their own (px_intercept.c, px__icpt_enabled): allowed_iam_roles or
allow_client_credentials = false without aws_iam_role, forward_s3_credentials or tempdir. There
is nothing to inject or resolve then, but the policy must still see every COPY and UNLOAD: a
proxy that turned interception on only for the injection keys let refused roles and client
keys through to Redshift while its configuration said they were refused.
"""

from fixtures_aws import PROXY_KEY, secret_of
from fixtures_copy import (BUCKET, INVALID_CREDS, OTHER_BUCKET, OTHER_ROLE, UNATTACHED, connect,
                           psql)
from test_copy_policy import copy_from, fails

CSV = "1,one,uno\n2,two,dos\n3,three,tres\n"
NOT_ALLOWED = "is not among rsproxy's allowed_iam_roles"
NO_KEYS = ("rsproxy does not allow statements that carry their own AWS credentials "
           "(allow_client_credentials = false)")


def test_allowed_iam_roles_alone_is_enforced(cx):
    cx.put("in/data.csv", CSV, bucket=OTHER_BUCKET)
    p = cx.proxy(s3={"allowed_iam_roles": OTHER_ROLE})
    before = cx.rs_log().count("COPY ")
    with connect(p) as c:
        for prepare in (False, True):
            e = fails(c, copy_from(BUCKET, "in/data.csv", f"IAM_ROLE '{UNATTACHED}'"),
                      prepare=prepare)
            assert (e.sqlstate, str(e)) == (
                "42501", f"COPY refused: IAM_ROLE '{UNATTACHED}' {NOT_ALLOWED}"), e
        e = fails(c, f"UNLOAD ('select 1') TO 's3://{BUCKET}/x_' IAM_ROLE default")
        assert (e.sqlstate, str(e)) == ("42501", f"UNLOAD refused: IAM_ROLE default "
                                                 f"{NOT_ALLOWED}"), e
        # The session goes on, and the listed role passes as the client wrote it.
        c.execute(copy_from(OTHER_BUCKET, "in/data.csv", f"IAM_ROLE '{OTHER_ROLE}'"))
        assert c.execute("SELECT count(*) FROM t").fetchone() == (3,)
        # Nothing is injected (no aws_iam_role) and relative locations stay relative (no
        # tempdir): Redshift refuses those itself, in its own words.
        e = fails(c, copy_from(BUCKET, "in/data.csv", ""))
        assert INVALID_CREDS in str(e), e
        e = fails(c, f"COPY t FROM 'in/data.csv' IAM_ROLE '{OTHER_ROLE}' CSV")
        assert "LOAD source is not supported" in str(e), e
    # The refused statements never reached the server; the others did, unchanged.
    assert cx.rs_log().count("COPY ") == before + 1
    assert "rewrote" not in p.log_text()
    assert p.log_contains(r"statement refused sqlstate=42501")


def test_allow_client_credentials_false_alone_is_enforced(cx):
    cx.put("in/data.csv", CSV, bucket=OTHER_BUCKET)
    key = secret_of(cx.stack.world, PROXY_KEY)
    p = cx.proxy(s3={"allow_client_credentials": False})
    p.secrets.add(key)
    with connect(p) as c:
        for auth in (f"ACCESS_KEY_ID '{PROXY_KEY}' SECRET_ACCESS_KEY '{key}'",
                     f"CREDENTIALS 'aws_access_key_id={PROXY_KEY};aws_secret_access_key={key}'"):
            e = fails(c, copy_from(BUCKET, "in/data.csv", auth))
            assert (e.sqlstate, str(e)) == ("42501", f"COPY refused: {NO_KEYS}"), e
        # Roles stay the client's choice.
        c.execute(copy_from(OTHER_BUCKET, "in/data.csv", f"IAM_ROLE '{OTHER_ROLE}'"))
    # psql's simple Query path too.
    r = psql(p, copy_from(BUCKET, "in/data.csv",
                          f"ACCESS_KEY_ID '{PROXY_KEY}' SECRET_ACCESS_KEY '{key}'"), check=False)
    assert r.returncode != 0 and NO_KEYS in r.stderr, r.stderr
    assert "auth=keys" not in cx.rs_log()
    assert cx.rows("SELECT count(*) FROM t") == [(3,)]


def test_policy_key_turned_on_by_reload(cx):
    """Policy keys are reloadable: a session started after SIGHUP is checked, one started
    before keeps the snapshot it started with (where nothing was checked)."""
    cx.put("in/data.csv", CSV)
    p = cx.proxy(s3={})
    refused = copy_from(BUCKET, "in/data.csv", f"IAM_ROLE '{UNATTACHED}'")
    with connect(p) as old:
        e = fails(old, refused)
        assert "is not authorized to assume IAM Role" in str(e), e  # Redshift's refusal
        p.config["s3"] = {"allowed_iam_roles": OTHER_ROLE}
        p.reload(p.config)
        p.wait_for_log(r"configuration reloaded", timeout=10)
        with connect(p) as new:
            e = fails(new, refused)
            assert e.sqlstate == "42501" and NOT_ALLOWED in str(e), e
        e = fails(old, refused)
        assert "is not authorized to assume IAM Role" in str(e), e


def test_pipelined_refusals_beyond_the_tracking_limit(cx):
    """More refusals in flight than rsproxy tracks at once (32), sent in one write, as
    Queries, as extended batches with several refusals each, and mixed with statements that
    run: rsproxy stops reading the client until answers make room, every refusal is answered
    in its place, and the session goes on."""
    import pgwire
    from test_copy_policy import pbe, raw_login, until_ready
    p = cx.proxy(s3={"allowed_iam_roles": OTHER_ROLE})
    refused = copy_from(BUCKET, "in/data.csv", f"IAM_ROLE '{UNATTACHED}'")
    with raw_login(p) as c:
        c.send(pgwire.query(refused) * 70)
        for _ in range(70):
            got = until_ready(c)
            assert [m.type for m in got] == [b"E", b"Z"] and got[0].sqlstate == "42501", got
        batch = pbe(refused) + pbe(refused) + pbe("SELECT 1") + pgwire.sync()
        c.send((batch + pgwire.query("SELECT 2")) * 50)
        for _ in range(50):
            got = until_ready(c)
            assert [m.type for m in got] == [b"E", b"Z"] and got[0].sqlstate == "42501", got
            got = until_ready(c)
            assert [m.type for m in got] == [b"T", b"D", b"C", b"Z"], got
            assert pgwire.parse_datarow(got[1].body) == ["2"]
        c.send(pgwire.query("SELECT 'still here'"))
        rows, _, errs = c.collect(60)
        assert (rows, errs) == ([["still here"]], [])
        c.send(pgwire.terminate())
    assert "COPY " not in cx.rs_log()
