"""COPY and UNLOAD through rsproxy: the options a client writes pass the rewrite untouched
(each is proven by its effect on the loaded rows or the written objects), s3a:// and s3n://
locations become s3://, relative locations resolve under [s3] tempdir, and every shape a
statement can travel in is rewritten: multi-statement simple Queries, Parse messages (psycopg
prepare=True, pgjdbc, raw protocol with named statements), comments, odd spacing and case,
nested quotes in UNLOAD queries, backslash escapes. Statements that are not COPY or UNLOAD,
even when they mention the words, reach the server byte for byte.

The stack and helpers are in fixtures_copy.py; every test here starts rsproxy with
aws_iam_role = RedshiftCopy and tempdir = s3://rsproxy-test/tmp/ unless it says otherwise.
"""

import gzip
import json

import psycopg
import pytest

import pgwire
from fixtures_copy import (BUCKET, ROLE, TEMPDIR, connect, jdbc_run, manifest_urls, psql)

CSV = "1,one,uno\n2,two,dos\n3,three,tres\n"
LOADED = [(1, "one", "uno"), (2, "two", "dos"), (3, "three", "tres")]
ROWS = [(1, "one", "uno"), (2, "two", None), (3, "three", "tres")]


def lines(cx, keys):
    out = []
    for k in keys:
        out += cx.get(k).decode().splitlines()
    return out


# ---------------------------------------------------------------------------------------------
# COPY options


@pytest.mark.parametrize("name,data,options,expect", [
    ("delimiter", "1;one;uno\n2;two;dos\n", "DELIMITER AS ';'",
     [(1, "one", "uno"), (2, "two", "dos")]),
    ("ignoreheader", "a,b,c\n1,one,uno\n", "CSV IGNOREHEADER 1", [(1, "one", "uno")]),
    ("null_as", "1|NIL|uno\n2|two|NIL\n", "NULL AS 'NIL'",
     [(1, None, "uno"), (2, "two", None)]),
    ("gzip", gzip.compress(b"1,one,uno\n2,two,dos\n"), "CSV GZIP",
     [(1, "one", "uno"), (2, "two", "dos")]),
    ("all", gzip.compress(b"a;b;c\n1;NIL;uno\n2;two;NIL\n"),
     "DELIMITER ';' IGNOREHEADER AS 1 GZIP NULL AS 'NIL' REGION 'us-east-1'",
     [(1, None, "uno"), (2, "two", None)]),
])
def test_copy_options_pass_through(cx, name, data, options, expect):
    p = cx.proxy()
    cx.put(f"in/{name}.dat", data)
    with connect(p) as c:
        c.execute(f"COPY t FROM 's3://{BUCKET}/in/{name}.dat' {options}")
    assert cx.rows() == expect
    assert f"COPY s3://{BUCKET}/in/{name}.dat auth=role" in cx.rs_log()


def test_copy_manifest_relative_under_tempdir(cx):
    # The manifest's location is relative (resolved under tempdir); the URLs inside it are the
    # data's and are S3's business, not rsproxy's.
    cx.put("in/a.csv", "1,one,uno\n")
    cx.put("in/b.csv", "2,two,dos\n")
    cx.put("in/c.csv", "3,three,tres\n")
    cx.put("tmp/load/list.manifest", json.dumps({"entries": [
        {"url": f"s3://{BUCKET}/in/a.csv", "mandatory": True},
        {"url": f"s3://{BUCKET}/in/c.csv", "mandatory": True}]}))
    p = cx.proxy()
    psql(p, "COPY t FROM 'load/list.manifest' CSV MANIFEST")
    assert cx.rows() == [(1, "one", "uno"), (3, "three", "tres")]
    assert f"COPY {TEMPDIR}load/list.manifest auth=role" in cx.rs_log()


def test_copy_column_list_and_schema_qualified_table(cx):
    cx.put("in/cols.csv", "x1,10\nx2,20\n")
    p = cx.proxy()
    with connect(p) as c:
        c.execute(f"COPY public.t (b, a) FROM 's3://{BUCKET}/in/cols.csv' CSV")
    assert cx.rows() == [(10, "x1", None), (20, "x2", None)]


# ---------------------------------------------------------------------------------------------
# UNLOAD options


def test_unload_manifest_parallel_off_header_allowoverwrite(cx):
    cx.load(ROWS)
    p = cx.proxy()
    q = "UNLOAD ('select a, b, c from t order by a') TO 'exports/o_' "
    with connect(p) as c:
        c.execute(q + "MANIFEST PARALLEL OFF HEADER")
        # The destination is no longer empty: without ALLOWOVERWRITE the stand-in refuses, as
        # Redshift does, which proves the statement reached it as written.
        with pytest.raises(psycopg.Error) as ei:
            c.execute(q + "PARALLEL OFF")
        assert "Specified unload destination on S3 is not empty" in str(ei.value)
        c.execute(q.replace("order by a", "where a > 1 order by a") +
                  "PARALLEL OFF HEADER ALLOWOVERWRITE NULL AS 'NIL' DELIMITER ','")
    assert cx.keys("tmp/exports/o_") == ["tmp/exports/o_000", "tmp/exports/o_manifest"]
    assert manifest_urls(cx.get("tmp/exports/o_manifest")) == [f"{TEMPDIR}exports/o_000"]
    assert cx.get("tmp/exports/o_000") == b"a,b,c\n2,two,NIL\n3,three,tres\n"
    log = cx.rs_log()
    assert log.count(f"UNLOAD {TEMPDIR}exports/o_ auth=role") == 3, log


def test_unload_parallel_default_and_manifest(cx):
    cx.load(ROWS)
    p = cx.proxy()
    psql(p, "UNLOAD ('select a, b from t order by a') TO 'exports/par_' MANIFEST")
    files = ["tmp/exports/par_0000_part_00", "tmp/exports/par_0001_part_00"]
    assert cx.keys("tmp/exports/par_") == files + ["tmp/exports/par_manifest"]
    assert sorted(manifest_urls(cx.get("tmp/exports/par_manifest"))) == \
        [f"s3://{BUCKET}/{k}" for k in files]
    assert sorted(lines(cx, files)) == ["1|one", "2|two", "3|three"]


# ---------------------------------------------------------------------------------------------
# Locations


@pytest.mark.parametrize("scheme", ["s3a", "s3n", "S3A"])
def test_hadoop_schemes_become_s3(cx, scheme):
    cx.put("in/data.csv", CSV)
    cx.load([(7, "seven", "siete")], table="t2")
    p = cx.proxy()
    with connect(p) as c:
        c.execute(f"COPY t FROM '{scheme}://{BUCKET}/in/data.csv' CSV")
        c.execute(f"UNLOAD ('select a from t2') TO '{scheme}://{BUCKET}/out/h_' PARALLEL OFF")
    assert cx.rows() == LOADED
    assert cx.get("out/h_000") == b"7\n"
    log = cx.rs_log()
    assert f"COPY s3://{BUCKET}/in/data.csv auth=role" in log
    assert f"UNLOAD s3://{BUCKET}/out/h_ auth=role" in log


@pytest.mark.parametrize("tempdir,location,key", [
    (TEMPDIR, "in/data.csv", "tmp/in/data.csv"),
    (TEMPDIR, "/in/data.csv", "tmp/in/data.csv"),                 # leading slashes dropped
    (f"s3://{BUCKET}/tmp", "in/data.csv", "tmp/in/data.csv"),     # no trailing slash
    (f"s3a://{BUCKET}/deep/er/", "in/data.csv", "deep/er/in/data.csv"),
    (f"s3://{BUCKET}", "in/data.csv", "in/data.csv"),             # the bucket's root
    (f"s3n://{BUCKET}/", "x.csv", "x.csv"),
])
def test_relative_locations_resolve_under_tempdir(cx, tempdir, location, key):
    cx.put(key, CSV)
    p = cx.proxy(s3={"aws_iam_role": ROLE, "tempdir": tempdir})
    with connect(p) as c:
        c.execute(f"COPY t FROM '{location}' CSV")
    assert cx.rows() == LOADED
    assert f"COPY s3://{BUCKET}/{key} auth=role" in cx.rs_log()


def test_tempdir_embedded_keys_never_reach_sql(cx):
    """Keys embedded in the tempdir URL are the proxy's own (spark-redshift's convention): the
    resolved location carries none of them, and they never appear in any log."""
    from fixtures_aws import PROXY_KEY, secret_of
    secret = secret_of(cx.stack.world, PROXY_KEY)
    cx.load(ROWS)
    p = cx.proxy(s3={"aws_iam_role": ROLE,
                     "tempdir": f"s3a://{PROXY_KEY}:{secret}@{BUCKET}/tmp/"},
                 proxy={"log_level": "trace"})
    with connect(p) as c:
        c.execute("UNLOAD ('select a from t order by a') TO 'exports/e_' PARALLEL OFF")
    assert cx.get("tmp/exports/e_000") == b"1\n2\n3\n"
    log = cx.rs_log()
    assert f"UNLOAD {TEMPDIR}exports/e_ auth=role" in log
    assert secret not in log and secret not in p.log_text()


# ---------------------------------------------------------------------------------------------
# Statement shapes: several statements in one Query, comments, spacing, case, quoting


def test_multi_statement_simple_query(cx):
    cx.put("in/data.csv", CSV)
    p = cx.proxy()
    with connect(p) as c:
        cur = c.execute(f"SELECT 1; COPY t FROM 's3://{BUCKET}/in/data.csv' CSV; "
                        "SELECT count(*) FROM t; "
                        "UNLOAD ('select a from t where a = 2') TO 'exports/m_' PARALLEL OFF;"
                        "SELECT 'after'")
        results = []
        while True:
            results.append((cur.statusmessage, cur.fetchall() if cur.description else None))
            if not cur.nextset():
                break
    assert results == [("SELECT 1", [(1,)]), ("COPY", None), ("SELECT 1", [(3,)]),
                       ("UNLOAD", None), ("SELECT 1", [("after",)])]
    assert cx.get("tmp/exports/m_000") == b"2\n"
    assert "rewrote 2 COPY/UNLOAD statement(s) in Query message" in p.log_text()
    # psql -c sends its text as one Query message too (psql 15 prints every result).
    cx.put("tmp/in/data.csv", CSV)
    r = psql(p, "SELECT 'x'; COPY t2 FROM 'in/data.csv' CSV; SELECT 'y'")
    assert r.stdout.split() == ["x", "COPY", "y"], r.stdout
    assert cx.rows("SELECT a, b, c FROM t2 ORDER BY a") == LOADED


def test_multi_statement_query_is_one_implicit_transaction(cx):
    """A failing statement after a COPY in the same Query undoes the COPY (one implicit
    transaction, as in PostgreSQL): the rewrite does not split the message."""
    cx.put("in/data.csv", CSV)
    p = cx.proxy()
    r = psql(p, f"COPY t FROM 's3://{BUCKET}/in/data.csv' CSV; SELECT 1/0", check=False)
    assert "division by zero" in r.stderr
    assert cx.rows() == []


COMMENTED = f"""/* a block comment /* nested */ still comment */
  -- a line comment: COPY t FROM 's3://nowhere/x' IAM_ROLE 'arn:aws:iam::1:role/x'
  cOpY/**/"t"  /* between */ ( a ,b,
      c )   -- after the columns
  FrOm
  /* before the location */ 's3a://{BUCKET}/in/data.csv'--after the location
  CsV ;   """


def test_comments_spacing_and_case(cx):
    cx.put("in/data.csv", CSV)
    cx.load([(9, "nine", "nueve")], table="t2")
    p = cx.proxy()
    with connect(p) as c:
        c.execute(COMMENTED)
        # No space between the parts, lower case, the options glued to the literal.
        c.execute("unload('select a,b from t2')to'exports/g_'parallel off")
        c.execute("\tUnLoAd\n(\n'select c from t2'\n)\nTO\n'exports/h_'\nPARALLEL\tOFF\n;\n")
    assert cx.rows() == LOADED
    assert cx.get("tmp/exports/g_000") == b"9|nine\n"
    assert cx.get("tmp/exports/h_000") == b"nueve\n"
    log = cx.rs_log()
    assert f"COPY s3://{BUCKET}/in/data.csv auth=role" in log
    assert "nowhere" not in log  # the commented-out COPY is not a statement


def test_unload_quoting_nested_and_backslash(cx):
    cx.load(ROWS)
    p = cx.proxy()
    with connect(p) as c:
        # Doubled quotes inside the query literal, and a literal with '' inside that.
        c.execute("UNLOAD ('select ''it''''s'' as x, b from t where c = ''uno''') "
                  "TO 'exports/q_' PARALLEL OFF")
        # Redshift reads backslash escapes in every literal (the stand-in runs with
        # standard_conforming_strings off): \' is a quote, and the rewriter must agree on where
        # the literal ends, or the role would land inside the query.
        c.execute("UNLOAD ('select \\'a\\'\\'b\\' as x, a from t where a = 3') "
                  "TO 'exports/bs_' PARALLEL OFF")
    assert cx.get("tmp/exports/q_000") == b"it's|one\n"
    assert cx.get("tmp/exports/bs_000") == b"a'b|3\n"


def test_unicode_identifiers_and_escape_string_location(cx):
    """Multibyte text before and after the location (a quoted table name, comments) and an
    E'...' location literal: offsets stay right and the location resolves."""
    cx.put("tmp/in/data.csv", CSV)
    with cx.stack.pg.admin(dbname="dev") as a:
        a.execute('DROP TABLE IF EXISTS "tablé_表"')
        a.execute('CREATE TABLE "tablé_表" ("列" int, b text, c text)')
        a.execute('GRANT ALL ON "tablé_表" TO PUBLIC')
    p = cx.proxy()
    with connect(p) as c:
        c.execute('/* données 🚚 */ COPY "tablé_表" FROM \'in/data.csv\' /* ✓ */ CSV')
        c.execute('COPY "tablé_表" FROM E\'in/data.csv\' CSV', prepare=True)
        c.execute('UNLOAD (\'select "列" from "tablé_表" where b = \'\'two\'\'\') '
                  'TO \'exports/ü_\' PARALLEL OFF')
        assert c.execute('SELECT count(*) FROM "tablé_表"').fetchone() == (6,)
    assert cx.get("tmp/exports/ü_000") == b"2\n2\n"


@pytest.mark.parametrize("sql,value", [
    ("SELECT 'COPY t FROM ''s3://x/y'' CSV' AS s", "COPY t FROM 's3://x/y' CSV"),
    ("SELECT 'unload' AS copy", "unload"),
    ("/* COPY t FROM 'in/' */ SELECT 'unload (''x'') to ''y''' AS s", "unload ('x') to 'y'"),
    ("SELECT $$COPY t FROM 'in/data.csv'$$ AS s", "COPY t FROM 'in/data.csv'"),
    ("-- UNLOAD ('select 1') TO 'x'\nSELECT 'copy' AS s", "copy"),
    ("SELECT E'COPY t FROM \\'in/\\' CSV' AS s", "COPY t FROM 'in/' CSV"),
])
def test_non_copy_statements_pass_byte_for_byte(cx, sql, value):
    p = cx.proxy()
    with connect(p) as c:
        # current_query() is the text the server received: it must be the client's exactly.
        text = sql + ", current_query()"
        assert c.execute(text).fetchone() == (value, text)
        assert c.execute(text, prepare=True).fetchone() == (value, text)
    assert "rewrote" not in p.log_text()
    assert "auth=" not in cx.rs_log()


# ---------------------------------------------------------------------------------------------
# The extended protocol: Parse messages


def test_psycopg_prepared_and_pipeline(cx):
    cx.put("in/data.csv", CSV)
    p = cx.proxy()
    with connect(p) as c:
        with c.pipeline():
            c.execute("SELECT 1")
            c.execute(f"COPY t FROM 's3://{BUCKET}/in/data.csv' CSV")
            c.execute("UNLOAD ('select a from t order by a') TO 'exports/pl_' PARALLEL OFF")
            cur = c.execute("SELECT count(*) FROM t")
        assert cur.fetchone() == (3,)
    assert cx.get("tmp/exports/pl_000") == b"1\n2\n3\n"
    assert "rewrote 1 COPY/UNLOAD statement(s) in Parse message" in p.log_text()


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


def test_raw_parse_named_statement_reused(cx):
    """A named Parse is rewritten once and executed twice through separate Bind/Execute/Sync
    rounds; an unnamed one in the same batch as its Bind works as well."""
    cx.put("tmp/in/data.csv", CSV)
    p = cx.proxy()
    with raw_login(p) as c:
        c.send(pgwire.parse("cp1", "COPY t FROM 'in/data.csv' CSV") +
               pgwire.describe(b"S", "cp1") + pgwire.sync())
        got = until_ready(c)
        # ParseComplete, ParameterDescription, NoData.
        assert [m.type for m in got] == [b"1", b"t", b"n", b"Z"], got
        for _ in range(2):
            c.send(pgwire.bind("", "cp1") + pgwire.execute() + pgwire.sync())
            got = until_ready(c)
            assert [m.type for m in got] == [b"2", b"N", b"C", b"Z"], got
            assert got[2].body == b"COPY\0"
        c.send(pgwire.parse("", "UNLOAD ('select count(*) from t') TO 'exports/r_' "
                                "PARALLEL OFF") +
               pgwire.bind("", "") + pgwire.execute() + pgwire.sync())
        got = until_ready(c)
        assert [m.type for m in got] == [b"1", b"2", b"N", b"C", b"Z"], got
        c.send(pgwire.terminate())
    assert sorted(cx.rows()) == sorted(LOADED * 2)
    assert cx.rs_log().count(f"COPY {TEMPDIR}in/data.csv auth=role") == 2
    assert cx.get("tmp/exports/r_000") == b"6\n"


def test_pgjdbc_statement_prepared_and_batch(cx, copy_jdbc_classes, workdir):
    cx.put("tmp/in/data.csv", CSV)
    cx.load([(5, "five", "cinco")], table="t2")
    p = cx.proxy()
    r = jdbc_run(copy_jdbc_classes, p, [
        ("prep", "COPY t FROM 'in/data.csv' CSV"),
        ("exec", "/* jdbc */ unload ('select b from t2') to 's3a://" + BUCKET +
                 "/out/j_' parallel off"),
        # A batch: one Parse/Bind/Execute per statement, one Sync for all.
        ("batch", "INSERT INTO t2 VALUES (6, 'six', 'seis')\n"
                  "UNLOAD ('select a from t2 order by a') TO 'exports/jb_' PARALLEL OFF\n"
                  "DELETE FROM t2 WHERE a = 5"),
        ("query", "SELECT a, b FROM t2 ORDER BY a"),
        # pgjdbc in simple mode sends a Query message instead.
        ("exec", "COPY t2 FROM 'in/data.csv' CSV"),
    ], workdir)
    for i in range(5):
        r.ok(i)
    assert cx.rows() == LOADED
    assert cx.get("out/j_000") == b"five\n"
    assert cx.get("tmp/exports/jb_000") == b"5\n6\n"
    assert r.rows[3] == [("6", "six")]
    assert cx.rows("SELECT a FROM t2 ORDER BY a") == [(1,), (2,), (3,), (6,)]

    r = jdbc_run(copy_jdbc_classes, p, [
        ("exec", "UNLOAD ('select a from t2 order by a') TO 'exports/js_' PARALLEL OFF"),
    ], workdir, preferQueryMode="simple")
    r.ok(0)
    assert cx.get("tmp/exports/js_000") == b"1\n2\n3\n6\n"
    log = p.log_text()
    assert "in Parse message" in log and "in Query message" in log
