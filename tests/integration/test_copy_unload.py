"""COPY and UNLOAD through rsproxy end to end (issue 4, "Done when"), with psql, psycopg 3 and
pgjdbc: the client writes `COPY t FROM 's3://bucket/data.csv' CSV;` and
`UNLOAD ('select ...') TO 'exports/t_';` without credentials, rsproxy (IAM login, TLS
verify-full to the Redshift stand-in) adds [s3] aws_iam_role and resolves the relative location
under [s3] tempdir, the Redshift stand-in assumes the role through the AWS stand-in and reads
or writes S3, and the test checks the rows in PostgreSQL and the objects in S3 with boto3.

Options, locations, statement shapes and protocols are in test_copy_forms.py; credentials the
client writes and policy refusals in test_copy_policy.py; forwarded keys, large statements
and the unconfigured proxy in test_copy_limits.py.
"""

import psycopg

from fixtures_copy import (BUCKET, CHAIN_ROLE, OTHER_BUCKET, ROLE, TEMPDIR, connect, jdbc_run,
                           psql)

CSV = "1,one,uno\n2,two,dos\n3,three,tres\n"
LOADED = [(1, "one", "uno"), (2, "two", "dos"), (3, "three", "tres")]
# examplecluster has 2 slices: UNLOAD writes <prefix>0000_part_00 and <prefix>0001_part_00,
# rows dealt round-robin, in Redshift's default pipe-delimited text.
UNLOAD_FILES = ["tmp/exports/t_0000_part_00", "tmp/exports/t_0001_part_00"]


def unloaded_lines(cx, keys):
    lines = []
    for k in keys:
        lines += cx.get(k).decode().splitlines()
    return sorted(lines)


def check_done_when(cx, p):
    """The objects and rows both statements must have produced, and what each hop saw."""
    assert cx.rows() == LOADED
    assert cx.keys("tmp/exports/t_") == UNLOAD_FILES
    assert unloaded_lines(cx, UNLOAD_FILES) == ["1|one|uno", "2|two|dos", "3|three|tres"]
    # The stand-in executed both with a role (the one rsproxy added; the client wrote none),
    # at the locations the client wrote resp. the one resolved under tempdir.
    log = cx.rs_log()
    assert f"COPY s3://{BUCKET}/data.csv auth=role" in log, log
    assert f"UNLOAD {TEMPDIR}exports/t_ auth=role" in log, log
    assert "rewrote 1 COPY/UNLOAD statement(s)" in p.log_text()


def test_done_when_psql(cx):
    p = cx.proxy()
    cx.put("data.csv", CSV)
    r = psql(p, f"COPY t FROM 's3://{BUCKET}/data.csv' CSV;",
             "UNLOAD ('select a, b, c from t order by a') TO 'exports/t_';",
             "SELECT count(*) FROM t")
    # Redshift's answers come through as they are: the bare COPY tag, the INFO notices.
    assert r.stdout.split() == ["COPY", "UNLOAD", "3"], r
    assert "Load into table 't' completed, 3 record(s) loaded successfully." in r.stderr
    assert "UNLOAD completed, 3 record(s) unloaded successfully." in r.stderr
    check_done_when(cx, p)


def test_done_when_psycopg_simple_and_prepared(cx):
    p = cx.proxy()
    cx.put("data.csv", CSV)
    with connect(p) as c:
        # Without parameters psycopg sends a simple Query.
        cur = c.execute(f"COPY t FROM 's3://{BUCKET}/data.csv' CSV;")
        assert cur.statusmessage == "COPY"
        assert c.execute("SELECT a, b, c FROM t ORDER BY a").fetchall() == LOADED
        c.execute("UNLOAD ('select a, b, c from t order by a') TO 'exports/t_';")
        assert "UNLOAD completed, 3 record(s) unloaded successfully." in c.notices
    check_done_when(cx, p)

    # The same two statements as prepared statements (Parse/Bind/Execute), twice each: the
    # second run reuses the statement the server prepared from rsproxy's rewritten Parse.
    c2_keys = ["tmp/exports/p_0000_part_00", "tmp/exports/p_0001_part_00"]
    with connect(p) as c:
        c.execute("TRUNCATE t")
        for _ in range(2):
            c.execute(f"COPY t FROM 's3://{BUCKET}/data.csv' CSV", prepare=True)
            c.execute("UNLOAD ('select a, b, c from t order by a') TO 'exports/p_' "
                      "ALLOWOVERWRITE", prepare=True)
        assert c.execute("SELECT count(*) FROM t").fetchone() == (6,)
    assert cx.keys("tmp/exports/p_") == c2_keys
    assert unloaded_lines(cx, c2_keys) == sorted(["1|one|uno", "2|two|dos", "3|three|tres"] * 2)
    assert cx.rs_log().count("auth=role") == 6


def test_done_when_pgjdbc(cx, copy_jdbc_classes, workdir):
    p = cx.proxy()
    cx.put("data.csv", CSV)
    r = jdbc_run(copy_jdbc_classes, p, [
        ("exec", f"COPY t FROM 's3://{BUCKET}/data.csv' CSV;"),
        ("exec", "UNLOAD ('select a, b, c from t order by a') TO 'exports/t_';"),
        ("query", "SELECT a, b, c FROM t ORDER BY a"),
        # A named server-side statement, executed twice.
        ("prep2", "UNLOAD ('select a from t where a > 1 order by a') TO 'exports/j_' "
                  "PARALLEL OFF ALLOWOVERWRITE"),
    ], workdir)
    r.ok(0)
    r.ok(1)
    assert r.rows[2] == [("1", "one", "uno"), ("2", "two", "dos"), ("3", "three", "tres")]
    assert any("3 record(s) loaded successfully" in n for n in r.notices.get(0, [])), r.stdout
    r.ok(3)
    check_done_when(cx, p)
    assert cx.keys("tmp/exports/j_") == ["tmp/exports/j_000"]
    assert cx.get("tmp/exports/j_000") == b"2\n3\n"


def test_the_role_is_the_configured_one(cx):
    """aws_iam_role as a chain that alone can read the other bucket: the COPY works only if
    rsproxy injected exactly that chain (RedshiftCopy assumes CrossAccountS3)."""
    cx.put("x/data.csv", CSV, bucket=OTHER_BUCKET)
    p = cx.proxy(s3={"aws_iam_role": f"{ROLE},{CHAIN_ROLE}", "tempdir": TEMPDIR})
    with connect(p) as c:
        c.execute(f"COPY t FROM 's3://{OTHER_BUCKET}/x/data.csv' CSV")
    assert cx.rows() == LOADED
    # With only the first role of the chain the same statement is refused by S3.
    p2 = cx.proxy()
    with connect(p2) as c:
        try:
            c.execute(f"COPY t FROM 's3://{OTHER_BUCKET}/x/data.csv' CSV")
            raise AssertionError("COPY from the other bucket worked with RedshiftCopy alone")
        except psycopg.Error as e:
            assert "S3ServiceException:Access Denied" in str(e), e
    assert cx.rows() == LOADED
