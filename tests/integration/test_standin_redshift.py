"""Tests of the Redshift SQL stand-in itself (tests/standins/redshift), with psycopg straight
to it (no rsproxy): it reports itself as Redshift, runs COPY from S3 and UNLOAD to S3 with
Redshift's formats inside the client's transaction, refuses what Redshift refuses with its
texts, authenticates configured users with Redshift's SHA-256 digest, and relays everything
else.

The full stack runs once for the file: PostgreSQL (redshift_pg), the AWS stand-in (role chains,
keys), the S3 stand-in (signature checks, bucket permissions) and the Redshift stand-in; each
test starts from empty buckets and fresh tables.
"""

import bz2
import gzip
import hashlib
import io
import json
import os
import random
import socket
import ssl
import struct
import sys
import tempfile
import threading
import time

import psycopg
import pytest
from psycopg import errors as pgerr

from fixtures_aws import PROXY_KEY, AwsStandin, make_world, secret_of
from fixtures_redshift import RS_DIR, RedshiftStandin
from fixtures_s3 import S3Standin

sys.path.insert(0, RS_DIR)
from rsstandin import commands, formats, pgauth, sqllex, wire  # noqa: E402

BUCKET = "rsproxy-test"
OTHER = "rsproxy-other"
EU = "rsproxy-eu"
ACCT = "123456789012"
ROLE = f"arn:aws:iam::{ACCT}:role/RedshiftCopy"
CROSS = f"arn:aws:iam::{ACCT}:role/CrossAccountS3"
INVALID_CREDS = ("Invalid credentials. Must be of the format: credentials 'aws_iam_role=...' or "
                 "'aws_access_key_id=...;aws_secret_access_key=...[;token=...]'")


@pytest.fixture(scope="module")
def stack(redshift_pg, workdir, certs, redshift_tls):
    """One AWS + S3 + Redshift stand-in stack for the whole file (each test empties the buckets
    and recreates its tables); every process must exit cleanly at the end."""
    world = make_world(redshift_pg, buckets=[BUCKET, OTHER, {"name": EU, "region": "eu-west-1"}])
    d = tempfile.mkdtemp(dir=workdir, prefix="rs-stack-")
    procs = []
    try:
        aws = AwsStandin(d, world).start()
        procs.append(aws)
        s3 = S3Standin(d, world, aws=aws).start()
        procs.append(s3)
        rs = RedshiftStandin(d, world, redshift_pg, redshift_tls, certs.ca_file, aws=aws,
                             s3=s3).start()
        procs.append(rs)
        yield world, aws, s3, rs
    finally:
        problems = []
        for p in reversed(procs):
            p.stop()
            found = p.problems() if isinstance(p, AwsStandin) else p.problems(p.secrets())
            problems += [f"{p.name}: {prob}\n{p.log_text()[-3000:]}" for prob in found]
        if problems:
            pytest.fail("a stand-in did not run cleanly:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def st(stack, redshift_pg):
    world, aws, s3, rs = stack

    class Stack:
        pass
    s = Stack()
    s.world, s.aws, s.s3, s.rs, s.pg = world, aws, s3, rs, redshift_pg
    s.s3c = s3.client(PROXY_KEY, secret_of(world, PROXY_KEY))
    for b in (BUCKET, OTHER, EU):
        for page in s.s3c.get_paginator("list_objects_v2").paginate(Bucket=b):
            objs = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if objs:
                s.s3c.delete_objects(Bucket=b, Delete={"Objects": objs})
    s.conn = rs.connect()
    s.notices = []
    s.conn.add_notice_handler(lambda d: s.notices.append(d.message_primary))
    s.conn.execute("DROP TABLE IF EXISTS t, u, w")
    s.conn.execute("CREATE TABLE t (a int, b varchar(12), c text)")
    yield s
    s.conn.close()


def put(st, key, data, bucket=BUCKET):
    st.s3c.put_object(Bucket=bucket, Key=key, Body=data)


def get(st, key, bucket=BUCKET):
    return st.s3c.get_object(Bucket=bucket, Key=key)["Body"].read()


def keys(st, prefix, bucket=BUCKET):
    r = st.s3c.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for o in r.get("Contents", [])]


def rows(st, sql="SELECT a, b, c FROM t ORDER BY a"):
    return st.conn.execute(sql).fetchall()


def copy(st, rest, table="t", src="in/", auth=f"IAM_ROLE '{ROLE}'", prepare=None):
    sql = f"COPY {table} FROM 's3://{BUCKET}/{src}' {auth} {rest}"
    return st.conn.execute(sql, prepare=prepare)


def error(callable_):
    with pytest.raises(psycopg.Error) as ei:
        callable_()
    return ei.value


# ---------------------------------------------------------------------------------------------
# Login and parameters


def test_reports_redshift_version_and_parameters(st):
    info = st.conn.info
    assert info.parameter_status("server_version") == "8.0.2"
    assert info.server_version == 80002
    assert info.parameter_status("server_encoding") == "UNICODE"
    assert info.parameter_status("padb_version")
    assert info.parameter_status("standard_conforming_strings") == "off"
    # libpq sent no client_protocol_version: no answer to it.
    assert info.parameter_status("server_protocol_version") is None
    # Redshift processes backslash escapes in ordinary literals.
    assert st.conn.execute("SELECT 'a\\tb', 'it\\'s'").fetchone() == ("a\tb", "it's")


class RawTls:
    """A minimal TLS client for startup packets libpq cannot send and for code 13."""

    def __init__(self, rs):
        raw = socket.create_connection(("127.0.0.1", rs.port), timeout=10)
        raw.sendall(struct.pack("!II", 8, 80877103))
        assert raw.recv(1) == b"S"
        ctx = ssl.create_default_context(cafile=rs.ca_file)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def startup(self, params):
        body = struct.pack("!I", 196608) + b"".join(
            k.encode() + b"\0" + v.encode() + b"\0" for k, v in params.items()) + b"\0"
        self.send(struct.pack("!I", len(body) + 4) + body)

    def recv(self):
        while len(self.buf) < 5 or len(self.buf) < 1 + struct.unpack("!I", self.buf[1:5])[0]:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("closed")
            self.buf += chunk
        n = struct.unpack("!I", self.buf[1:5])[0]
        t, body, self.buf = self.buf[:1], self.buf[5:1 + n], self.buf[1 + n:]
        return t, body

    def msg(self, t, body=b""):
        self.send(t + struct.pack("!I", len(body) + 4) + body)

    def until_ready(self):
        """Messages up to ReadyForQuery: (ParameterStatus dict, errors, others)."""
        params, errs, other = {}, [], []
        while True:
            t, body = self.recv()
            if t == b"S":
                k, v = body.split(b"\0")[:2]
                params[k.decode()] = v.decode()
            elif t == b"E":
                errs.append(_fields(body))
            elif t == b"Z":
                return params, errs, other
            else:
                other.append((t, body))

    def query(self, sql):
        self.msg(b"Q", sql.encode() + b"\0")
        data = []
        while True:
            t, body = self.recv()
            if t == b"D":
                (n,) = struct.unpack_from("!H", body, 0)
                pos, row = 2, []
                for _ in range(n):
                    (ln,) = struct.unpack_from("!i", body, pos)
                    pos += 4
                    row.append(None if ln < 0 else body[pos:pos + ln].decode())
                    pos += max(ln, 0)
                data.append(row)
            elif t == b"E":
                raise AssertionError(_fields(body))
            elif t == b"Z":
                return data

    def close(self):
        try:
            self.msg(b"X")
        finally:
            self.sock.close()


def _fields(body):
    out, pos = {}, 0
    while body[pos] != 0:
        end = body.index(b"\0", pos)
        out[chr(body[pos])] = body[pos + 1:end].decode()
        pos = end + 1
    return out


def md5_login(rs, pg, params):
    c = RawTls(rs)
    c.startup(params)
    t, body = c.recv()
    assert t == b"R" and struct.unpack("!I", body[:4])[0] == 5, (t, body)
    answer = pgauth.md5_answer("md5user", pg.passwords["md5user"], body[4:8])
    c.msg(b"p", answer.encode() + b"\0")
    t, body = c.recv()
    assert (t, struct.unpack("!I", body[:4])[0]) == (b"R", 0)
    return c


def test_redshift_driver_startup_keys(st):
    """Keys only Redshift knows are not passed to PostgreSQL (which would refuse them), and
    client_protocol_version / driver_discovery_version get Redshift's answers."""
    c = md5_login(st.rs, st.pg, {
        "user": "md5user", "database": "rsdb", "client_protocol_version": "2",
        "driver_version": "Redshift Python Driver 2.1.15", "os_version": "Linux",
        "driver_discovery_version": "1", "plugin_name": "x", "application_name": "t"})
    params, errs, _ = c.until_ready()
    assert errs == []
    assert params["server_version"] == "8.0.2"
    assert params["server_protocol_version"] == "0"  # the stand-in speaks the base protocol
    assert params["show_discovery"] == "0"
    assert params["datashare_enabled"] == "off"
    assert params["application_name"] == "t"
    assert c.query("SELECT current_user") == [["md5user"]]
    c.close()


def test_digest_login(redshift_pg, redshift_standin_factory):
    pw = "digest-" + hashlib.sha256(os.urandom(8)).hexdigest()[:16]
    redshift_pg.sql("DROP ROLE IF EXISTS digestuser")
    redshift_pg.sql(f"CREATE ROLE digestuser LOGIN PASSWORD '{pw}'")
    world = make_world(redshift_pg)
    world["clusters"]["examplecluster"]["digest_users"] = {"digestuser": pw}
    rs = redshift_standin_factory(world=world)

    def login(password):
        c = RawTls(rs)
        c.startup({"user": "digestuser", "database": "rsdb"})
        t, body = c.recv()
        assert t == b"R"
        code, algo, slen = struct.unpack_from("!III", body, 0)
        assert (code, algo) == (13, 0)
        salt = body[12:12 + slen]
        (nlen,) = struct.unpack_from("!I", body, 12 + slen)
        nonce = body[16 + slen:16 + slen + nlen]
        client_nonce = str(int(time.time() * 1000)).encode()
        d2 = hashlib.sha256(hashlib.sha256(password.encode() + salt).digest() + nonce +
                            client_nonce).digest()
        c.msg(b"d", struct.pack("!I", 32) + d2 + struct.pack("!I", len(client_nonce)) +
              client_nonce)
        return c

    c = login(pw)
    t, body = c.recv()
    assert (t, struct.unpack("!I", body[:4])[0]) == (b"R", 0)
    params, errs, _ = c.until_ready()
    assert errs == [] and params["server_version"] == "8.0.2"
    assert c.query("SELECT current_user, 1 + 1") == [["digestuser", "2"]]
    c.close()
    c = login("wrong password")
    t, body = c.recv()
    f = _fields(body)
    assert t == b"E" and f["C"] == "28P01" and f["S"] == "FATAL"
    assert f["M"] == 'password authentication failed for user "digestuser"'
    c.sock.close()
    # libpq does not know code 13, as with real Redshift SHA-256 users.
    e = error(lambda: psycopg.connect(rs.dsn(user="digestuser", password=pw)))
    assert "authentication method 13 not supported" in str(e)
    # Other users still go through PostgreSQL's own authentication.
    with rs.connect(user="md5user") as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("md5user",)
    e = error(lambda: psycopg.connect(rs.dsn(user="scramuser", password="wrong")))
    assert "password authentication failed" in str(e)


# ---------------------------------------------------------------------------------------------
# COPY


def test_copy_default_text_format(st):
    put(st, "in/part1", b"1|one|x\n2||\\N\n3|  |\n")
    copy(st, "")
    assert rows(st) == [(1, "one", "x"), (2, "", None), (3, "  ", "")]
    assert st.notices[-1] == "Load into table 't' completed, 3 record(s) loaded successfully."
    assert st.conn.execute("SELECT 1").fetchone()  # session still fine
    # Empty and blank fields of non-character columns load as NULL.
    st.conn.execute("CREATE TABLE u (a int, d date)")
    put(st, "u/1", b"|\n \t|  \n")
    copy(st, "", table="u", src="u/")
    assert rows(st, "SELECT * FROM u") == [(None, None), (None, None)]


def test_copy_command_tag_and_extended_protocol(st):
    put(st, "in/x", b"1|a|b\n")
    cur = st.conn.cursor()
    cur.execute(f"COPY t FROM 's3://{BUCKET}/in/' IAM_ROLE '{ROLE}'", prepare=True)
    assert cur.statusmessage == "COPY"  # PostgreSQL 8.0 (and the stand-in's choice) has no count
    cur.execute(f"COPY t FROM 's3://{BUCKET}/in/' IAM_ROLE '{ROLE}'", prepare=False)
    assert rows(st) == [(1, "a", "b"), (1, "a", "b")]


def test_copy_delimiter_escape_removequotes(st):
    put(st, "esc/1", b"1,a\\,b,c\\\\d\n2,line\\\nbreak,\\N\n")
    copy(st, "DELIMITER ',' ESCAPE", src="esc/")
    assert rows(st) == [(1, "a,b", "c\\d"), (2, "line\nbreak", None)]
    st.conn.execute("TRUNCATE t")
    put(st, "rq/1", b"1|\"a|b\"|'x'\n")
    copy(st, "REMOVEQUOTES", src="rq/")
    assert rows(st) == [(1, "a|b", "x")]
    st.conn.execute("TRUNCATE t")
    put(st, "tab/1", b"7\tA\tB\n")
    copy(st, "DELIMITER AS '\\t'", src="tab/")
    assert rows(st) == [(7, "A", "B")]


def test_copy_csv(st):
    put(st, "csv/1", b'1,"a,b","x ""q"" y"\n2,"multi\nline",\n3,,""\n')
    copy(st, "CSV", src="csv/")
    assert rows(st) == [(1, "a,b", 'x "q" y'), (2, "multi\nline", ""), (3, "", "")]
    st.conn.execute("TRUNCATE t")
    put(st, "csvq/1", b"4|'p|q'|'it''s'\n")
    copy(st, "CSV QUOTE AS '''' DELIMITER '|'", src="csvq/")
    assert rows(st) == [(4, "p|q", "it's")]
    st.conn.execute("TRUNCATE t")
    put(st, "csvn/1", b"5,NULL,NULL\n6,,\n")
    copy(st, "FORMAT AS CSV NULL AS 'NULL' EMPTYASNULL", src="csvn/")
    assert rows(st) == [(5, None, None), (6, None, None)]


def test_copy_null_as_and_char_options(st):
    put(st, "n/1", b"1|nil|   \n2|  pad  |z\n")
    copy(st, "NULL AS 'nil' BLANKSASNULL TRIMBLANKS", src="n/")
    assert rows(st) == [(1, None, None), (2, "  pad", "z")]
    st.conn.execute("TRUNCATE t")
    put(st, "fill/1", b"1|only\n\n2|x|y\n")
    copy(st, "FILLRECORD IGNOREBLANKLINES", src="fill/")
    assert rows(st) == [(1, "only", ""), (2, "x", "y")]
    st.conn.execute("TRUNCATE t")
    put(st, "trunc/1", "1|ééééééééé|c\n".encode())  # 18 bytes into varchar(12)
    copy(st, "TRUNCATECOLUMNS", src="trunc/")
    assert rows(st) == [(1, "éééééé", "c")]


def test_copy_ignoreheader_prefix_gzip_bzip2_columns(st):
    put(st, "multi/a.csv.gz", gzip.compress(b"a,b,c\n1,x,y\n"))
    put(st, "multi/b.csv.gz", gzip.compress(b"a,b,c\n2,z,w\n3,q,r\n"))
    put(st, "multiX/c", b"not loaded\n")
    copy(st, "CSV IGNOREHEADER 1 GZIP", src="multi/")
    assert rows(st) == [(1, "x", "y"), (2, "z", "w"), (3, "q", "r")]
    st.conn.execute("TRUNCATE t")
    put(st, "bz/1", bz2.compress(b"c-val|9\n"))
    st.conn.execute(f"COPY t (c, a) FROM 's3://{BUCKET}/bz/' IAM_ROLE '{ROLE}' BZIP2")
    assert rows(st) == [(9, None, "c-val")]


def test_copy_manifest(st):
    put(st, "m/a", b"1|a|a\n")
    put(st, "m/b", b"2|b|b\n")
    manifest = {"entries": [{"url": f"s3://{BUCKET}/m/a", "mandatory": True},
                            {"url": f"s3://{BUCKET}/m/b", "mandatory": False},
                            {"url": f"s3://{BUCKET}/m/missing", "mandatory": False}]}
    put(st, "m/list.manifest", json.dumps(manifest).encode())
    copy(st, "MANIFEST", src="m/list.manifest")
    assert rows(st) == [(1, "a", "a"), (2, "b", "b")]
    manifest["entries"][2]["mandatory"] = True
    put(st, "m/bad.manifest", json.dumps(manifest).encode())
    e = error(lambda: copy(st, "MANIFEST", src="m/bad.manifest"))
    assert "m/missing" in e.diag.message_primary and "mandatory" in e.diag.message_primary
    put(st, "m/broken.manifest", b"{not json")
    e = error(lambda: copy(st, "MANIFEST", src="m/broken.manifest"))
    assert e.diag.message_primary == "Manifest file is not in correct json format"


def test_copy_region(st):
    put(st, "r/1", b"1|eu|eu\n", bucket=EU)
    keys_auth = (f"ACCESS_KEY_ID '{PROXY_KEY}' "
                 f"SECRET_ACCESS_KEY '{secret_of(st.world, PROXY_KEY)}'")
    e = error(lambda: st.conn.execute(f"COPY t FROM 's3://{EU}/r/' {keys_auth}"))
    assert e.diag.message_primary.startswith(
        "S3ServiceException:The bucket you are attempting to access must be addressed using the "
        "specified endpoint.")
    assert ",Status 301,Error PermanentRedirect," in e.diag.message_primary
    st.conn.execute(f"COPY t FROM 's3://{EU}/r/' {keys_auth} REGION AS 'eu-west-1'")
    assert rows(st) == [(1, "eu", "eu")]


def test_copy_in_transaction(st):
    put(st, "tx/1", b"1|a|a\n2|b|b\n")
    conn = st.rs.connect(autocommit=False)
    conn.execute(f"COPY t FROM 's3://{BUCKET}/tx/' IAM_ROLE '{ROLE}'")
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)
    conn.rollback()
    assert rows(st) == []
    conn.execute(f"COPY t FROM 's3://{BUCKET}/tx/' IAM_ROLE '{ROLE}'", prepare=True)
    conn.commit()
    assert len(rows(st)) == 2
    # A failing COPY aborts the transaction, as any error does.
    conn.execute("INSERT INTO t VALUES (3, 'c', 'c')")
    e = error(lambda: conn.execute(f"COPY t FROM 's3://{BUCKET}/nothing-here' IAM_ROLE '{ROLE}'"))
    assert e.diag.message_primary == "The specified S3 prefix 'nothing-here' does not exist"
    e = error(lambda: conn.execute("SELECT 1"))
    assert isinstance(e, pgerr.InFailedSqlTransaction)
    conn.rollback()
    assert len(rows(st)) == 2
    # A simple Query with several statements runs them all in one implicit transaction.
    e = error(lambda: st.conn.execute(
        f"INSERT INTO t VALUES (9, 'z', 'z'); COPY t FROM 's3://{BUCKET}/none' IAM_ROLE '{ROLE}'"))
    assert "does not exist" in e.diag.message_primary
    assert st.conn.execute("SELECT count(*) FROM t WHERE a = 9").fetchone() == (0,)
    st.conn.execute(f"INSERT INTO t VALUES (9, 'z', 'z'); COPY t FROM 's3://{BUCKET}/tx/' "
                    f"IAM_ROLE '{ROLE}'; DELETE FROM t WHERE a = 1")
    assert sorted(r[0] for r in rows(st)) == [2, 2, 9]  # both rows with a = 1 deleted
    conn.close()


def test_copy_load_errors(st):
    put(st, "bad/1", b"1|a|a\nx|b|b\n")
    e = error(lambda: copy(st, "", src="bad/"))
    assert e.diag.message_primary == ("Load into table 't' failed.  Check 'stl_load_errors' "
                                      "system table for details.")
    assert "invalid input syntax for type integer" in e.diag.message_detail
    assert e.diag.sqlstate == "XX000"
    put(st, "short/1", b"1|a\n")
    e = error(lambda: copy(st, "", src="short/"))
    assert "Delimiter not found" in e.diag.message_detail
    put(st, "long/1", b"1|a|b|c\n")
    e = error(lambda: copy(st, "", src="long/"))
    assert "Extra column(s) found" in e.diag.message_detail
    assert rows(st) == []
    put(st, "maxerr/1", b"1|a|b|c\n2|b|b\n")
    copy(st, "MAXERROR 1", src="maxerr/")
    assert rows(st) == [(2, "b", "b")]
    e = error(lambda: copy(st, "", table="no_such_table"))
    assert e.diag.sqlstate == "42P01"


# ---------------------------------------------------------------------------------------------
# Authorization


@pytest.mark.parametrize("auth", [
    "",
    f"IAM_ROLE '{ROLE}' CREDENTIALS 'aws_iam_role={ROLE}'",
    f"IAM_ROLE '{ROLE}' ACCESS_KEY_ID 'AKIA' SECRET_ACCESS_KEY 'x'",
    "ACCESS_KEY_ID 'AKIAONLY'",
    "CREDENTIALS 'aws_access_key_id=AKIA;aws_session_token=x'",
    "CREDENTIALS 'aws_access_key_id=AKIA; aws_secret_access_key=x'",
    f"WITH CREDENTIALS AS 'aws_iam_role={ROLE};aws_access_key_id=AKIA'",
])
def test_invalid_authorization(st, auth):
    put(st, "in/1", b"1|a|a\n")
    for sql in (f"COPY t FROM 's3://{BUCKET}/in/' {auth}",
                f"UNLOAD ('select 1') TO 's3://{BUCKET}/x/' {auth}"):
        e = error(lambda: st.conn.execute(sql))
        assert e.diag.message_primary == INVALID_CREDS, sql
        assert e.diag.sqlstate == "XX000"
        assert "code:      8001" in e.diag.message_detail
    assert rows(st) == []


def test_authorization_forms_that_work(st):
    put(st, "in/1", b"1|a|a\n")
    temp = st.aws.assume_for_redshift("examplecluster", ROLE)
    forms = [f"IAM_ROLE '{ROLE}'", "IAM_ROLE default", f"CREDENTIALS 'aws_iam_role={ROLE}'",
             f"WITH CREDENTIALS AS 'aws_iam_role={ROLE}'",
             f"ACCESS_KEY_ID '{temp['access_key_id']}' SECRET_ACCESS_KEY "
             f"'{temp['secret_access_key']}' SESSION_TOKEN '{temp['session_token']}'",
             f"CREDENTIALS 'aws_access_key_id={temp['access_key_id']};aws_secret_access_key="
             f"{temp['secret_access_key']};token={temp['session_token']}'",
             f"ACCESS_KEY_ID '{PROXY_KEY}' SECRET_ACCESS_KEY '{secret_of(st.world, PROXY_KEY)}'"]
    for form in forms:
        copy(st, "", auth=form)
    assert len(rows(st)) == len(forms)


def test_role_chains_and_s3_permissions(st):
    put(st, "chain/1", b"5|o|o\n", bucket=OTHER)
    put(st, "in/1", b"1|a|a\n", bucket=OTHER)
    # The role may not read the other bucket: S3 refuses, Redshift reports it.
    e = error(lambda: st.conn.execute(f"COPY t FROM 's3://{OTHER}/chain/' IAM_ROLE '{ROLE}'"))
    assert e.diag.message_primary.startswith("S3ServiceException:Access Denied,Status 403,"
                                             "Error AccessDenied,Rid ")
    # Chained to a role that may, it works.
    st.conn.execute(f"COPY t FROM 's3://{OTHER}/chain/' IAM_ROLE '{ROLE},{CROSS}'")
    assert rows(st) == [(5, "o", "o")]
    # A role not attached to the cluster, an unknown role, a broken chain.
    who = f"arn:aws:redshift:us-east-1:{ACCT}:dbuser:examplecluster/scramuser"
    for roles, expected in (
            (CROSS, f"User {who} is not authorized to assume IAM Role {CROSS}"),
            (f"arn:aws:iam::{ACCT}:role/NoSuchRole",
             f"User {who} is not authorized to assume IAM Role arn:aws:iam::{ACCT}:role/NoSuchRole"),
            (f"{ROLE},arn:aws:iam::{ACCT}:role/rsproxy-app",
             f"User {ROLE} is not authorized to assume IAM Role "
             f"arn:aws:iam::{ACCT}:role/rsproxy-app")):
        e = error(lambda: st.conn.execute(f"COPY t FROM 's3://{OTHER}/chain/' IAM_ROLE '{roles}'"))
        assert e.diag.message_primary == expected
        assert f"IAM Role={roles}" in e.diag.message_detail
    # Key credentials that S3 does not accept.
    e = error(lambda: copy(st, "", auth=f"ACCESS_KEY_ID '{PROXY_KEY}' SECRET_ACCESS_KEY 'wrong'"))
    assert e.diag.message_primary.startswith(
        "S3ServiceException:The request signature we calculated does not match the signature "
        "you provided.")
    assert ",Error SignatureDoesNotMatch," in e.diag.message_primary
    e = error(lambda: copy(st, "", auth="ACCESS_KEY_ID 'AKIANOSUCHKEY0000000' "
                                        "SECRET_ACCESS_KEY 'x'"))
    assert e.diag.message_primary.startswith(
        "S3ServiceException:The AWS Access Key Id you provided does not exist in our records.")
    e = error(lambda: copy(st, "FORMAT AS PARQUET",
                           auth=f"ACCESS_KEY_ID '{PROXY_KEY}' SECRET_ACCESS_KEY 'x'"))
    assert e.diag.message_primary == "COPY from this file format only accepts IAM_ROLE credentials."
    e = error(lambda: st.conn.execute(f"COPY t FROM '/tmp/local.txt' IAM_ROLE '{ROLE}'"))
    assert e.diag.message_primary.startswith("LOAD source is not supported.")


# ---------------------------------------------------------------------------------------------
# What Redshift rejects


@pytest.mark.parametrize("sql, near", [
    ("COPY t FROM STDIN", "STDIN"),
    ("copy t (a, b) from stdin with csv", "stdin"),
    ("COPY t TO STDOUT", "STDOUT"),
    ("COPY (SELECT 1) TO STDOUT", "("),
    ("/* pooling reset */ DISCARD ALL", "DISCARD"),
    ("discard all", "discard"),
])
@pytest.mark.parametrize("prepare", [False, True])
def test_rejected_statements(st, sql, near, prepare):
    e = error(lambda: st.conn.execute(sql, prepare=prepare))
    assert isinstance(e, pgerr.SyntaxError)
    assert e.diag.message_primary == f'syntax error at or near "{near}"'
    assert int(e.diag.statement_position) == sql.index(near) + 1
    assert st.conn.execute("SELECT 42").fetchone() == (42,)


def test_rejections_abort_transaction_and_batch(st):
    conn = st.rs.connect(autocommit=False)
    conn.execute("INSERT INTO t VALUES (1, 'a', 'a')")
    error(lambda: conn.execute("DISCARD ALL"))
    e = error(lambda: conn.execute("SELECT 1"))
    assert isinstance(e, pgerr.InFailedSqlTransaction)
    conn.rollback()
    # psycopg's COPY support uses COPY ... FROM STDIN: refused.
    with conn.cursor() as cur:
        e = error(lambda: cur.copy("COPY t FROM STDIN").__enter__())
        assert 'syntax error at or near "STDIN"' in str(e)
    conn.rollback()
    conn.close()
    # In one extended-protocol batch (pipeline), a refused statement fails the whole batch.
    with st.rs.connect() as c2:
        with pytest.raises(psycopg.Error):
            with c2.pipeline():
                c2.execute("INSERT INTO t VALUES (2, 'b', 'b')")
                c2.execute("DISCARD ALL")
                c2.execute("INSERT INTO t VALUES (3, 'c', 'c')")
        assert c2.execute("SELECT count(*) FROM t").fetchone() == (0,)
    # Several statements in one Query: a syntax error anywhere means nothing runs.
    e = error(lambda: st.conn.execute("INSERT INTO t VALUES (4, 'd', 'd'); COPY t FROM STDIN"))
    assert isinstance(e, pgerr.SyntaxError)
    assert rows(st) == []


# ---------------------------------------------------------------------------------------------
# UNLOAD


@pytest.fixture
def data(st):
    st.conn.execute("INSERT INTO t VALUES (1, 'plain', 'x'), (2, 'pi|pe', NULL), "
                    "(3, 'new\nline', 'back\\\\slash'), (4, 'q\"uote', 'it''s'), (5, NULL, '')")
    return st


def unload(st, query, prefix, rest="", auth=f"IAM_ROLE '{ROLE}'"):
    st.conn.execute(f"UNLOAD ('{query}') TO 's3://{BUCKET}/{prefix}' {auth} {rest}")


def test_unload_default_parallel(data):
    st = data
    unload(st, "select * from t order by a", "u/def_")
    assert keys(st, "u/def_") == ["u/def_0000_part_00", "u/def_0001_part_00"]
    lines = (get(st, "u/def_0000_part_00") + get(st, "u/def_0001_part_00")).decode()
    assert sorted(lines.splitlines()) == sorted(
        ["1|plain|x", "2|pi|pe|", "3|new", "line|back\\slash", "4|q\"uote|it's", "5||"])
    assert st.notices[-1] == "UNLOAD completed, 5 record(s) unloaded successfully."


def test_unload_parallel_off_header_null_escape(data):
    st = data
    unload(st, "select * from t order by a", "u/ser_", "PARALLEL OFF HEADER NULL AS 'NULL' ESCAPE")
    assert keys(st, "u/ser_") == ["u/ser_000"]
    assert get(st, "u/ser_000").decode() == (
        "a|b|c\n1|plain|x\n2|pi\\|pe|NULL\n3|new\\\nline|back\\\\slash\n4|q\"uote|it's\n5|NULL|\n")


def test_unload_csv_addquotes_delimiter(data):
    st = data
    unload(st, "select a, b from t where a in (1, 2, 4) order by a", "u/csv_",
           "FORMAT AS CSV HEADER PARALLEL OFF")
    assert get(st, "u/csv_000").decode() == 'a,b\n1,plain\n2,pi|pe\n4,"q""uote"\n'
    unload(st, "select a, b from t where a in (1, 2) order by a", "u/csvd_",
           "CSV DELIMITER AS '|' PARALLEL FALSE")
    assert get(st, "u/csvd_000").decode() == '1|plain\n2|"pi|pe"\n'
    unload(st, "select a, b from t where a in (1, 5) order by a", "u/aq_",
           "ADDQUOTES DELIMITER ',' PARALLEL OFF")
    assert get(st, "u/aq_000").decode() == '"1","plain"\n"5",""\n'


def test_unload_query_quoting(data):
    st = data
    unload(st, "select a from t where b = ''plain'' or c = \\'it\\\\\\'s\\' order by a",
           "u/q_", "PARALLEL OFF")
    assert get(st, "u/q_000").decode() == "1\n4\n"


def test_unload_manifest_and_verbose(data):
    st = data
    unload(st, "select a, b from t order by a", "u/m_", "MANIFEST")
    doc = json.loads(get(st, "u/m_manifest"))
    assert doc == {"entries": [{"url": f"s3://{BUCKET}/u/m_0000_part_00"},
                               {"url": f"s3://{BUCKET}/u/m_0001_part_00"}]}
    unload(st, "select a, b from t order by a", "u/v/", "MANIFEST VERBOSE HEADER")
    doc = json.loads(get(st, "u/v/manifest"))
    assert [e["url"] for e in doc["entries"]] == [f"s3://{BUCKET}/u/v/0000_part_00",
                                                  f"s3://{BUCKET}/u/v/0001_part_00"]
    sizes = [len(get(st, f"u/v/000{i}_part_00")) for i in (0, 1)]
    assert [e["meta"]["content_length"] for e in doc["entries"]] == sizes
    assert sum(e["meta"]["record_count"] for e in doc["entries"]) == 5 + 2  # rows + headers
    assert doc["schema"]["elements"] == [
        {"name": "a", "type": {"base": "integer"}},
        {"name": "b", "type": {"base": "character varying", "length": 12}}]
    assert doc["meta"] == {"content_length": sum(sizes), "record_count": 7}
    assert doc["author"] == {"name": "Amazon Redshift", "version": "1.0.0"}


def test_unload_gzip_and_overwrite(data):
    st = data
    unload(st, "select a from t order by a", "u/gz_", "GZIP PARALLEL OFF")
    assert keys(st, "u/gz_") == ["u/gz_000.gz"]
    assert gzip.decompress(get(st, "u/gz_000.gz")) == b"1\n2\n3\n4\n5\n"
    e = error(lambda: unload(st, "select a from t", "u/gz_", "GZIP PARALLEL OFF"))
    assert e.diag.message_primary == (
        "Specified unload destination on S3 is not empty. Consider using a different bucket / "
        "prefix, manually removing the target files in S3, or using the ALLOWOVERWRITE option.")
    unload(st, "select a from t where a < 3 order by a", "u/gz_", "GZIP PARALLEL OFF "
           "ALLOWOVERWRITE")
    assert gzip.decompress(get(st, "u/gz_000.gz")) == b"1\n2\n"
    unload(st, "select 7", "u/gz_", "CLEANPATH PARALLEL OFF")
    assert keys(st, "u/gz_") == ["u/gz_000"]


def test_unload_then_copy_round_trip(data):
    st = data
    unload(st, "select * from t", "rt/", "ESCAPE NULL AS '\\\\N'")
    st.conn.execute("CREATE TABLE w (LIKE t)")
    copy(st, "ESCAPE", table="w", src="rt/")
    assert rows(st, "SELECT * FROM w ORDER BY a") == rows(st)


def test_unload_refusals(data):
    st = data
    e = error(lambda: unload(st, "select * from t", "other/", auth="")
              if False else st.conn.execute(
                  f"UNLOAD ('select * from t') TO 's3://{OTHER}/x/' IAM_ROLE '{ROLE}'"))
    assert e.diag.message_primary.startswith("S3ServiceException:Access Denied,Status 403")
    e = error(lambda: unload(st, "delete from t", "d/"))
    assert "SELECT" in e.diag.message_primary
    assert len(rows(st)) == 5
    e = error(lambda: unload(st, "select * from no_such_table", "d/"))
    assert e.diag.sqlstate == "42P01"
    e = error(lambda: unload(st, "select 1", "d/", "FORMAT AS PARQUET"))
    assert e.diag.sqlstate == "0A000"


def test_unload_in_extended_protocol_and_transaction(data):
    st = data
    conn = st.rs.connect(autocommit=False)
    conn.execute("INSERT INTO t VALUES (6, 'six', 'six')")
    conn.execute(f"UNLOAD ('select a from t where a > 4 order by a') TO 's3://{BUCKET}/ext/' "
                 f"IAM_ROLE '{ROLE}' PARALLEL OFF", prepare=True)
    assert get(st, "ext/000") == b"5\n6\n"  # sees its own transaction's row
    conn.rollback()
    conn.close()


# ---------------------------------------------------------------------------------------------
# Relay


def test_relays_everything_else(st):
    c = st.conn
    c.execute("INSERT INTO t SELECT g, 'v' || g, NULL FROM generate_series(1, 50000) g")
    cur = c.cursor()
    cur.execute("SELECT a, b FROM t ORDER BY a")
    n = 0
    for row in cur:
        n += 1
    assert n == 50000
    e = error(lambda: c.execute("SELECT * FROM no_such_table"))
    assert e.diag.sqlstate == "42P01"
    with st.rs.connect() as listener:
        listener.execute("LISTEN chan")
        c.execute("NOTIFY chan, 'hello'")
        guard = threading.Timer(10, listener.cancel)  # psycopg 3.1 has no notifies(timeout)
        guard.start()
        note = next(listener.notifies())
        guard.cancel()
        assert (note.channel, note.payload) == ("chan", "hello")
    # Cancel is relayed to PostgreSQL.
    slow = st.rs.connect()
    timer = threading.Timer(0.5, slow.cancel)
    timer.start()
    t0 = time.time()
    e = error(lambda: slow.execute("SELECT pg_sleep(20)"))
    assert isinstance(e, pgerr.QueryCanceled) and time.time() - t0 < 10
    slow.close()
    # Prepared statements with parameters and binary results go straight through.
    for i in range(8):
        assert c.execute("SELECT %s::int + 1", [i], prepare=True, binary=True).fetchone() == (i + 1,)


# ---------------------------------------------------------------------------------------------
# The stand-in's own parsers: whatever the input, only their declared errors come out.


SEEDS = [
    f"COPY t (a, \"B\") FROM 's3://b/k' IAM_ROLE '{ROLE}' CSV QUOTE AS '''' GZIP IGNOREHEADER 1",
    "UNLOAD ('select * from t where x = ''y'' and z = \\'w\\'') TO 's3://b/p_' IAM_ROLE default "
    "MANIFEST VERBOSE HEADER PARALLEL OFF MAXFILESIZE 10 MB",
    "copy t from 's3://b/k' credentials 'aws_access_key_id=A;aws_secret_access_key=B;token=C'",
    "/* c /* nested */ */ DISCARD ALL; select $$a;b$$, $x$;$x$, E'\\'', \"q\"\"i\"; -- x",
]


def _mutations(rnd, n):
    alphabet = "COPYUNLOADFROMTOIAM_ROLEWITHCREDENTIALS'\"\\$;()-/*,.|: \n\tabcs3019"
    for _ in range(n):
        base = list(rnd.choice(SEEDS))
        for _ in range(rnd.randint(1, 6)):
            op = rnd.randrange(3)
            pos = rnd.randrange(len(base) + 1)
            if op == 0 and base:
                del base[min(pos, len(base) - 1)]
            elif op == 1:
                base.insert(pos, rnd.choice(alphabet))
            else:
                base[pos:pos + rnd.randint(0, 8)] = []
        yield "".join(base)
    for _ in range(n // 2):
        yield "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 60)))


def test_sql_parsers_on_mutated_input():
    rnd = random.Random(20240501)
    for sql in SEEDS + list(_mutations(rnd, 4000)):
        toks = sqllex.tokenize(sql)
        for t in toks:
            assert 0 <= t.start < t.end <= len(sql), (sql, t)
        for st in sqllex.split_statements(sql, toks):
            try:
                commands.classify(st, sql)
            except commands.RsError as e:
                assert e.sqlstate and e.message
        sqllex.decode_string(sql)
        sqllex.decode_option(sql)
        sqllex.first_word(sql)
    parsed = commands.classify(sqllex.split_statements(SEEDS[0])[0], SEEDS[0])
    assert isinstance(parsed, commands.CopyCommand)
    assert (parsed.fmt, parsed.quote, parsed.compression, parsed.ignoreheader) == \
        ("csv", "'", "gzip", 1)
    assert parsed.columns == ["a", '"B"'] and parsed.auth.roles == ROLE
    parsed = commands.classify(sqllex.split_statements(SEEDS[1])[0], SEEDS[1])
    assert parsed.query == "select * from t where x = 'y' and z = 'w'"
    assert (parsed.verbose, parsed.header, parsed.parallel, parsed.maxfilesize) == \
        (True, True, False, 10 * 1024 * 1024)


def test_wire_and_format_parsers_on_random_bytes():
    rnd = random.Random(7)
    parsers = [wire.parse_startup, wire.parse_query, wire.parse_parse, wire.parse_bind,
               wire.parse_describe_close, wire.parse_execute, wire.parse_error_fields,
               wire.parse_row_description, wire.parse_data_row, pgauth.parse_digest_answer]
    for _ in range(3000):
        data = bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 40)))
        for p in parsers:
            try:
                p(data)
            except wire.ProtocolError:
                pass
    q = f"COPY t FROM 's3://b/k' IAM_ROLE '{ROLE}' ESCAPE REMOVEQUOTES"
    cmd = commands.classify(sqllex.split_statements(q)[0], q)
    cols = [formats.Column("a", False), formats.Column("b", True, 4)]
    for _ in range(2000):
        data = bytes(rnd.choice(b"ab|\\\n\"'\x00\xc3\xa9\xff") for _ in range(rnd.randint(0, 30)))
        try:
            b"".join(formats.CopyInput(cmd, cols).batches(io.BytesIO(data), "s3://b/k"))
        except formats.LoadError:
            pass


# ---------------------------------------------------------------------------------------------
# pgjdbc (Debian's libpostgresql-jdbc-java): the extended protocol as a second driver speaks it


def test_pgjdbc(st, workdir):
    import shutil
    import subprocess
    jar = os.environ.get("RSPROXY_JDBC_JAR", "/usr/share/java/postgresql.jar")
    for tool in ("javac", "java"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} not found: run tests/install-deps.sh", pytrace=False)
    if not os.path.exists(jar):
        pytest.fail(f"{jar} missing: run tests/install-deps.sh", pytrace=False)
    out = tempfile.mkdtemp(dir=workdir, prefix="rs-jdbc-")
    src = os.path.join(RS_DIR, "jdbc", "StandinJdbc.java")
    p = subprocess.run(["javac", "-d", out, "-cp", jar, src], capture_output=True, text=True,
                       timeout=180)
    assert p.returncode == 0, p.stderr
    put(st, "jin/1", b"1|x|y\n2||\\N\n")
    st.conn.execute("DROP TABLE IF EXISTS jt")
    url = (f"jdbc:postgresql://localhost:{st.rs.port}/rsdb?sslmode=verify-full&sslrootcert="
           f"{st.rs.ca_file}&prepareThreshold=1&connectTimeout=10")
    p = subprocess.run(["java", "-cp", f"{jar}:{out}", "StandinJdbc", url, "scramuser",
                        st.pg.passwords["scramuser"], ROLE], capture_output=True, text=True,
                       timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert lines == [
        "version 8.0.2",
        "rows 6",
        "unload ok",
        'refused 42601 ERROR: syntax error at or near "DISCARD"',
        'refused 42601 ERROR: syntax error at or near "STDIN"',
        "copy failed ERROR: The specified S3 prefix 'nothing' does not exist",
        "after rollback 0",
    ], p.stdout + p.stderr
    assert get(st, "jout/000") == b"1|x|y\n1|x|y\n1|x|y\n2||\n2||\n2||\n"
    st.conn.execute("DROP TABLE jt")


# ---------------------------------------------------------------------------------------------
# The stack rsproxy's tests use: a login with GetClusterCredentials' temporary password


def test_redshift_stack_iam_login(redshift_stack):
    s = redshift_stack
    rs_api = s.aws.client("redshift")
    cluster = rs_api.describe_clusters(ClusterIdentifier="examplecluster")["Clusters"][0]
    assert cluster["Endpoint"] == {"Address": "localhost", "Port": s.redshift.port}
    creds = rs_api.get_cluster_credentials(DbUser="alice", DbName="rsdb",
                                           ClusterIdentifier="examplecluster")
    assert creds["DbUser"] == "IAM:alice"
    with psycopg.connect(s.redshift.dsn(user=creds["DbUser"], password=creds["DbPassword"])) as c:
        assert c.execute("SELECT current_user").fetchone() == ("IAM:alice",)
        assert c.info.parameter_status("server_version") == "8.0.2"
    e = error(lambda: psycopg.connect(s.redshift.dsn(user=creds["DbUser"], password="nope")))
    assert "password authentication failed" in str(e)
