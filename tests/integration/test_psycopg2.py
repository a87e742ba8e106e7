"""psycopg2 through rsproxy: queries, errors inside transactions and recovery, prepared
statements (SQL-level; psycopg2 has no protocol-level ones), cancel, COPY both ways,
Unicode and client_encoding, LISTEN/NOTIFY, and asynchronous connections."""

import io
import select
import threading
import time

import psycopg2
import psycopg2.errorcodes
import psycopg2.extensions
import psycopg2.extras
import pytest

from pgharness import wait_until


def connect(proxy, **kw):
    return psycopg2.connect(proxy.dsn(**kw))


def test_queries(proxy):
    c = connect(proxy)
    try:
        cur = c.cursor()
        cur.execute("SELECT %s + %s, %s::text, %s", (40, 2, "héllo", None))
        assert cur.fetchone() == (42, "héllo", None)
        cur.execute("SELECT g FROM generate_series(1, 5000) g")
        assert len(cur.fetchall()) == 5000
        # A named (server-side) cursor fetches in batches through DECLARE/FETCH.
        named = c.cursor("p2_named")
        named.itersize = 100
        named.execute("SELECT g FROM generate_series(1, 1234) g")
        assert sum(r[0] for r in named) == sum(range(1, 1235))
        named.close()
        c.commit()
    finally:
        c.close()


def test_error_inside_transaction_and_recovery(proxy):
    c = connect(proxy)
    try:
        cur = c.cursor()
        cur.execute("CREATE TEMP TABLE p2_tx (v int CHECK (v > 0))")
        cur.execute("INSERT INTO p2_tx VALUES (1)")
        with pytest.raises(psycopg2.errors.CheckViolation) as ei:
            cur.execute("INSERT INTO p2_tx VALUES (-1)")
        assert ei.value.pgcode == psycopg2.errorcodes.CHECK_VIOLATION
        with pytest.raises(psycopg2.errors.InFailedSqlTransaction):
            cur.execute("SELECT 1")
        c.rollback()
        cur.execute("CREATE TEMP TABLE p2_tx (v int)")
        cur.execute("INSERT INTO p2_tx VALUES (5)")
        c.commit()
        cur.execute("SELECT sum(v) FROM p2_tx")
        assert cur.fetchone()[0] == 5
        assert c.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_INTRANS
        c.rollback()
    finally:
        c.close()


def test_prepared_statements(proxy):
    c = connect(proxy)
    c.autocommit = True
    try:
        cur = c.cursor()
        cur.execute("PREPARE p2_q(int) AS SELECT $1 * $1")
        for i in range(10):
            cur.execute("EXECUTE p2_q(%s)", (i,))
            assert cur.fetchone()[0] == i * i
        cur.execute("SELECT count(*) FROM pg_prepared_statements WHERE name = 'p2_q'")
        assert cur.fetchone()[0] == 1
        psycopg2.extras.execute_batch(cur, "EXECUTE p2_q(%s)", [(i,) for i in range(100)])
        cur.execute("DEALLOCATE p2_q")
    finally:
        c.close()


def test_cancel(proxy, pg, slow):
    c = connect(proxy, application_name="p2-cancel")
    try:
        def canceller():
            wait_until(lambda: any("pg_sleep(60)" in (r[4] or "") and r[3] == "active"
                                   for r in pg.backends(user="scramuser")),
                       10 * slow, what="pg_sleep to run")
            c.cancel()
        t = threading.Thread(target=canceller)
        t.start()
        t0 = time.monotonic()
        cur = c.cursor()
        with pytest.raises(psycopg2.errors.QueryCanceled):
            cur.execute("SELECT pg_sleep(60)")
        elapsed = time.monotonic() - t0
        t.join()
        assert elapsed < 10 * slow
        c.rollback()
        cur.execute("SELECT 'alive'")
        assert cur.fetchone()[0] == "alive"
    finally:
        c.close()


def test_copy_both_ways(proxy):
    c = connect(proxy)
    try:
        cur = c.cursor()
        cur.execute("CREATE TEMP TABLE p2_copy (id int, t text)")
        src = "".join(f"{i}\tligne {i} — ✓\n" for i in range(4000))
        cur.copy_expert("COPY p2_copy FROM STDIN", io.StringIO(src))
        cur.execute("SELECT count(*) FROM p2_copy")
        assert cur.fetchone()[0] == 4000
        dst = io.StringIO()
        cur.copy_expert("COPY (SELECT * FROM p2_copy ORDER BY id) TO STDOUT", dst)
        assert dst.getvalue() == src
        out = io.StringIO()
        cur.copy_to(out, "p2_copy", columns=("id",))
        assert len(out.getvalue().splitlines()) == 4000
        # A malformed row aborts the COPY; the connection recovers after rollback.
        with pytest.raises(psycopg2.errors.InvalidTextRepresentation):
            cur.copy_expert("COPY p2_copy FROM STDIN", io.StringIO("1\tok\nbad\trow\n"))
        c.rollback()
        cur.execute("SELECT 1")
        assert cur.fetchone()[0] == 1
    finally:
        c.close()


def test_unicode_and_client_encoding(proxy):
    c = connect(proxy)
    c.autocommit = True
    try:
        cur = c.cursor()
        cur.execute('CREATE TABLE "p2_ünïcode_表" ("列" text)')
        cur.execute('INSERT INTO "p2_ünïcode_表" VALUES (%s), (%s)', ("Grüße", "中文 🐉"))
        cur.execute('SELECT "列" FROM "p2_ünïcode_表" ORDER BY 1')
        assert [r[0] for r in cur.fetchall()] == ["Grüße", "中文 🐉"]
        assert cur.description[0].name == "列"
    finally:
        c.close()
    c = connect(proxy, client_encoding="LATIN1")
    c.autocommit = True
    try:
        assert c.encoding == "LATIN1"
        cur = c.cursor()
        cur.execute("SELECT %s::text", ("Grüße",))
        assert cur.fetchone()[0] == "Grüße"
    finally:
        c.close()
    c = connect(proxy)
    c.autocommit = True
    c.cursor().execute('DROP TABLE "p2_ünïcode_表"')
    c.close()


def test_listen_notify(proxy):
    listener = connect(proxy)
    notifier = connect(proxy)
    listener.autocommit = notifier.autocommit = True
    try:
        listener.cursor().execute("LISTEN p2_chan")
        notifier.cursor().execute("NOTIFY p2_chan, 'payload é'")
        deadline = time.monotonic() + 10
        while not listener.notifies and time.monotonic() < deadline:
            if select.select([listener], [], [], 1) != ([], [], []):
                listener.poll()
        assert [(n.channel, n.payload) for n in listener.notifies] == [("p2_chan", "payload é")]
    finally:
        listener.close()
        notifier.close()


def wait_async(conn, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        state = conn.poll()
        if state == psycopg2.extensions.POLL_OK:
            return
        remaining = deadline - time.monotonic()
        assert remaining > 0, "async operation timed out"
        if state == psycopg2.extensions.POLL_READ:
            select.select([conn.fileno()], [], [], remaining)
        elif state == psycopg2.extensions.POLL_WRITE:
            select.select([], [conn.fileno()], [], remaining)


def test_async_connection(proxy, pg):
    conns = [psycopg2.connect(proxy.dsn(), async_=True) for _ in range(8)]
    try:
        for c in conns:
            wait_async(c)
        curs = []
        for i, c in enumerate(conns):
            cur = c.cursor()
            cur.execute("SELECT %s::int * 10, pg_sleep(1.5)", (i,))
            curs.append(cur)
        # The eight queries run upstream at the same time, not one after the other.
        wait_until(lambda: sum(1 for r in pg.backends(user="scramuser")
                               if "pg_sleep(1.5)" in (r[4] or "") and r[3] == "active") == 8,
                   5, what="eight concurrent queries upstream")
        for c in conns:
            wait_async(c)
        assert [cur.fetchone()[0] for cur in curs] == [i * 10 for i in range(8)]
    finally:
        for c in conns:
            c.close()
