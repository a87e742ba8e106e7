"""psql through rsproxy: queries, errors inside transactions, SQL-level prepared statements,
cancel (SIGINT -> CancelRequest), COPY both ways (\\copy and COPY ... STDIN/STDOUT), Unicode
and client_encoding, LISTEN/NOTIFY, and that the upstream leg really is TLS."""

import os
import signal
import subprocess
import time

from pgharness import pg_bin, wait_until


def psql(proxy, *args, input=None, timeout=60, env=None, user="scramuser", dbname="rsdb",
         check=True):
    e = dict(os.environ, LANG="C.UTF-8", LC_ALL="C.UTF-8")
    e.update(env or {})
    argv = [pg_bin("psql"), "-X", "-v", "ON_ERROR_STOP=1", "-d",
            proxy.dsn(user=user, dbname=dbname)] + list(args)
    p = subprocess.run(argv, input=input, capture_output=True, timeout=timeout, env=e)
    if check and p.returncode != 0:
        raise AssertionError(f"psql exited {p.returncode}\nstdout: {p.stdout!r}\n"
                             f"stderr: {p.stderr!r}")
    return p


def out(p):
    return p.stdout.decode("utf-8")


def test_simple_queries(proxy):
    p = psql(proxy, "-At", "-c", "SELECT 1", "-c", "SELECT 'two', 3 + 4")
    assert out(p).splitlines() == ["1", "two|7"]


def test_upstream_leg_is_verified_tls(proxy, pg):
    p = psql(proxy, "-At", "-c",
             "SELECT ssl, current_user, inet_server_addr() FROM pg_stat_ssl "
             "WHERE pid = pg_backend_pid()")
    assert out(p).strip() == "t|scramuser|127.0.0.1"


def test_startup_parameters_reach_upstream(proxy):
    p = psql(proxy, "-At", "-c", "SHOW application_name", "-c", "SELECT current_database()",
             env={"PGAPPNAME": "psql-through-rsproxy"})
    # The DSN sets application_name=rsproxy-it, which wins over PGAPPNAME.
    assert out(p).splitlines() == ["rsproxy-it", "rsdb"]


def test_error_inside_transaction_and_recovery(proxy):
    script = b"""
\\set ON_ERROR_STOP 0
\\set VERBOSITY verbose
CREATE TABLE psql_tx (v int);
BEGIN;
INSERT INTO psql_tx VALUES (1);
SELECT 1/0;
SELECT 2;
ROLLBACK;
SELECT 'recovered', count(*) FROM psql_tx;
BEGIN;
INSERT INTO psql_tx VALUES (2);
COMMIT;
SELECT count(*) FROM psql_tx;
DROP TABLE psql_tx;
"""
    p = psql(proxy, "-Atq", input=script, check=False)
    err = p.stderr.decode()
    assert "22012" in err and "division by zero" in err
    assert "25P02" in err  # current transaction is aborted
    assert out(p).splitlines() == ["recovered|0", "1"]


def test_sql_prepared_statements(proxy):
    p = psql(proxy, "-Atq", "-c",
             "PREPARE q(int, text) AS SELECT $1 * 2, upper($2); "
             "EXECUTE q(21, 'abc'); EXECUTE q(5, 'xyz'); DEALLOCATE q;")
    assert out(p).splitlines() == ["42|ABC", "10|XYZ"]


def test_cancel_with_sigint(proxy, pg, slow):
    e = dict(os.environ, LANG="C.UTF-8")
    argv = [pg_bin("psql"), "-X", "-d", proxy.dsn(application_name="psql-cancel"), "-c",
            "SELECT pg_sleep(60)"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e)
    try:
        wait_until(lambda: any("pg_sleep(60)" in (r[4] or "") and r[3] == "active"
                               for r in pg.backends(user="scramuser")),
                   10 * slow, what="the query to run upstream")
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=15 * slow)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert b"canceling statement due to user request" in stderr, stderr
    assert elapsed < 5 * slow, f"cancel took {elapsed:.1f}s"


def test_copy_both_ways(proxy):
    psql(proxy, "-c", "CREATE TABLE psql_copy (id int, name text, note text)")
    rows = "".join(f"{i}\tname {i}\t{'x' * (i % 50)}\n" for i in range(5000))
    psql(proxy, "-c", "\\copy psql_copy FROM STDIN", input=rows.encode())
    psql(proxy, "-c", "COPY psql_copy FROM STDIN WITH (FORMAT csv)",
         input=b'9001,"comma, inside",\n9002,"quote "" inside",\\N\n')
    p = psql(proxy, "-At", "-c", "SELECT count(*), sum(id) FROM psql_copy")
    assert out(p).strip() == f"5002|{sum(range(5000)) + 9001 + 9002}"
    p = psql(proxy, "-c", "COPY (SELECT * FROM psql_copy WHERE id < 5000 ORDER BY id) "
                          "TO STDOUT")
    assert out(p) == rows
    p = psql(proxy, "-c", "\\copy (SELECT id, name FROM psql_copy WHERE id > 9000 ORDER BY id) "
                          "TO STDOUT WITH (FORMAT csv)")
    assert out(p) == '9001,"comma, inside"\n9002,"quote "" inside"\n'
    # A COPY that fails mid-stream leaves the session usable (CopyFail/ErrorResponse path).
    p = psql(proxy, "-v", "ON_ERROR_STOP=0", "-At", "-c", "\\copy psql_copy FROM STDIN",
             "-c", "SELECT 'after', count(*) FROM psql_copy",
             input=b"1\tok\tok\nnot-a-number\tx\ty\n", check=False)
    assert b"invalid input syntax for type integer" in p.stderr
    assert "after|5002" in out(p)
    psql(proxy, "-c", "DROP TABLE psql_copy")


def test_unicode_identifiers_and_values(proxy):
    script = """
CREATE TABLE "données_日本" ("名前" text, "emoji_😀" text);
INSERT INTO "données_日本" VALUES ('Zoë', 'こんにちは 🌍'), ('Ñandú', '𝄞 clef');
SELECT "名前" || '=' || "emoji_😀" FROM "données_日本" ORDER BY 1;
SELECT length('𝄞'), octet_length('𝄞');
DROP TABLE "données_日本";
"""
    p = psql(proxy, "-At", input=script.encode("utf-8"))
    lines = out(p).splitlines()
    assert "Zoë=こんにちは 🌍" in lines
    assert "Ñandú=𝄞 clef" in lines
    assert "1|4" in lines


def test_client_encoding_latin1(proxy):
    psql(proxy, "-c", "CREATE TABLE psql_enc (v text)")
    # psql sends client_encoding=LATIN1 in the startup packet; the server converts.
    p = psql(proxy, "-At", input="SHOW client_encoding;\nINSERT INTO psql_enc VALUES "
             "('caf\xe9 na\xefve');\n".encode("latin-1"), env={"PGCLIENTENCODING": "LATIN1"})
    assert out(p).splitlines()[0] == "LATIN1"
    p = psql(proxy, "-At", "-c", "SELECT v, octet_length(v) FROM psql_enc",
             env={"PGCLIENTENCODING": "UTF8"})
    assert out(p).strip() == "café naïve|12"
    p = psql(proxy, "-At", "-c", "SELECT v FROM psql_enc", env={"PGCLIENTENCODING": "LATIN1"})
    assert p.stdout.strip() == "caf\xe9 na\xefve".encode("latin-1")
    psql(proxy, "-c", "DROP TABLE psql_enc")


def test_listen_notify(proxy):
    p = psql(proxy, "-At", input=b"LISTEN psql_chan;\nNOTIFY psql_chan, 'hello \xc3\xa9';\n"
             b"SELECT 'after';\n")
    text = out(p)
    assert 'Asynchronous notification "psql_chan" with payload "hello é" received' in text


def test_many_sequential_sessions(proxy, pg):
    for i in range(20):
        p = psql(proxy, "-At", "-c", f"SELECT {i}")
        assert out(p).strip() == str(i)
    # Every session's upstream connection went away with it.
    wait_until(lambda: not pg.backends(user="scramuser"), 10, what="upstream sessions to end")
