"""psycopg 3 through rsproxy, in its three ways of talking: sync, async (asyncio) and
pipeline mode. Queries, errors inside transactions and recovery, server-side prepared
statements, cancel, COPY both ways, Unicode and client_encoding, LISTEN/NOTIFY."""

import asyncio
import select
import threading
import time

import psycopg
import pytest
from psycopg import errors, sql

from pgharness import wait_until


# ---- sync


def test_queries_and_types(proxy):
    with proxy.connect() as c:
        row = c.execute("SELECT 1::int, 'x'::text, 2.5::numeric, true, NULL::int, "
                        "'{1,2,3}'::int[], '\\xdeadbeef'::bytea").fetchone()
        assert row[:5] == (1, "x", __import__("decimal").Decimal("2.5"), True, None)
        assert row[5] == [1, 2, 3] and bytes(row[6]) == b"\xde\xad\xbe\xef"
        rows = c.execute("SELECT g, md5(g::text) FROM generate_series(1, 1000) g").fetchall()
        assert len(rows) == 1000 and rows[-1][0] == 1000
        # Parameters go through the extended protocol (Parse/Bind/Execute).
        assert c.execute("SELECT %s::int + %s::int", (40, 2)).fetchone()[0] == 42
        assert c.execute("SELECT %b::bytea", (b"\x00\x01\xff",)).fetchone()[0] == b"\x00\x01\xff"


def test_error_inside_transaction_and_recovery(proxy):
    with proxy.connect(autocommit=False) as c:
        c.execute("CREATE TABLE pg3_tx (v int PRIMARY KEY)")
        c.commit()
        c.execute("INSERT INTO pg3_tx VALUES (1)")
        with pytest.raises(errors.UniqueViolation) as ei:
            c.execute("INSERT INTO pg3_tx VALUES (1)")
        assert ei.value.sqlstate == "23505"
        with pytest.raises(errors.InFailedSqlTransaction):
            c.execute("SELECT 1")
        c.rollback()
        assert c.execute("SELECT count(*) FROM pg3_tx").fetchone()[0] == 0
        # Savepoints: an error rolled back to a savepoint keeps the transaction.
        with c.transaction():
            c.execute("INSERT INTO pg3_tx VALUES (2)")
            with pytest.raises(errors.DivisionByZero):
                with c.transaction():
                    c.execute("SELECT 1/0")
            c.execute("INSERT INTO pg3_tx VALUES (3)")
        c.commit()
        assert c.execute("SELECT array_agg(v ORDER BY v) FROM pg3_tx").fetchone()[0] == [2, 3]
        c.execute("DROP TABLE pg3_tx")
        c.commit()


def test_error_fields_are_relayed(proxy):
    with proxy.connect() as c:
        with pytest.raises(errors.RaiseException) as ei:
            c.execute("DO $$ BEGIN RAISE EXCEPTION 'custom failure' USING "
                      "DETAIL = 'some detail', HINT = 'a hint', ERRCODE = 'P0001'; END $$")
        diag = ei.value.diag
        assert diag.message_primary == "custom failure"
        assert diag.message_detail == "some detail"
        assert diag.message_hint == "a hint"
        assert diag.sqlstate == "P0001"
        notices = []
        c.add_notice_handler(lambda d: notices.append(d.message_primary))
        c.execute("DO $$ BEGIN RAISE NOTICE 'a notice %', 42; END $$")
        assert notices == ["a notice 42"]
        assert c.execute("SELECT 'still usable'").fetchone()[0] == "still usable"


def test_prepared_statements(proxy, pg):
    with proxy.connect(application_name="pg3-prepared") as c:
        c.prepare_threshold = 0  # prepare server-side from the first execution
        for i in range(5):
            assert c.execute("SELECT %s::int * 3", (i,)).fetchone()[0] == i * 3
        names = [r[0] for r in c.execute("SELECT name FROM pg_prepared_statements")]
        assert any(n.startswith("_pg3_") for n in names), names
        # Explicit prepare=True and executemany both reuse named statements.
        c.execute("CREATE TEMP TABLE pg3_prep (a int, b text)")
        cur = c.cursor()
        cur.executemany("INSERT INTO pg3_prep VALUES (%s, %s)",
                        [(i, f"v{i}") for i in range(200)])
        assert c.execute("SELECT count(*), max(b) FROM pg3_prep",
                         prepare=True).fetchone() == (200, "v99")


def test_cancel(proxy, pg, slow):
    with proxy.connect(application_name="pg3-cancel") as c:
        def cancel_when_running():
            wait_until(lambda: any("pg_sleep(60)" in (r[4] or "") and r[3] == "active"
                                   for r in pg.backends(user="scramuser")),
                       10 * slow, what="pg_sleep to run")
            c.cancel()
        t = threading.Thread(target=cancel_when_running)
        t.start()
        t0 = time.monotonic()
        with pytest.raises(errors.QueryCanceled):
            c.execute("SELECT pg_sleep(60)")
        elapsed = time.monotonic() - t0
        t.join()
        assert elapsed < 10 * slow, f"cancel took {elapsed:.1f}s"
        # The session survives a cancel.
        assert c.execute("SELECT 7").fetchone()[0] == 7


def test_copy_both_ways(proxy):
    with proxy.connect() as c:
        c.execute("CREATE TABLE pg3_copy (id int, name text, data bytea)")
        rows = [(i, f"nom {i} é", bytes([i % 256]) * (i % 100)) for i in range(3000)]
        with c.cursor().copy("COPY pg3_copy FROM STDIN") as cp:
            for r in rows:
                cp.write_row(r)
        assert c.execute("SELECT count(*) FROM pg3_copy").fetchone()[0] == 3000
        got = []
        with c.cursor().copy("COPY (SELECT * FROM pg3_copy ORDER BY id) TO STDOUT") as cp:
            cp.set_types(["int4", "text", "bytea"])
            for r in cp.rows():
                got.append((r[0], r[1], bytes(r[2])))
        assert got == rows
        # Binary COPY, raw blocks.
        with c.cursor().copy("COPY (SELECT id FROM pg3_copy WHERE id < 10) TO STDOUT "
                             "(FORMAT binary)") as cp:
            data = b"".join(bytes(b) for b in cp)
        assert data.startswith(b"PGCOPY\n\xff\r\n\0")
        # An error raised by the client during COPY FROM sends CopyFail; nothing is loaded.
        with pytest.raises(errors.QueryCanceled):
            with c.cursor().copy("COPY pg3_copy FROM STDIN") as cp:
                cp.write_row((99999, "never", b""))
                raise psycopg.errors.QueryCanceled("client gave up")
        assert c.execute("SELECT count(*) FROM pg3_copy WHERE id = 99999").fetchone()[0] == 0
        c.execute("DROP TABLE pg3_copy")


def test_unicode_and_client_encoding(proxy):
    vals = ["ascii", "é à ü", "日本語テキスト", "emoji 🚀🎉", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢"]
    with proxy.connect() as c:
        # Multi-byte identifiers in the statement text (Parse) and in RowDescription.
        c.execute(sql.SQL("CREATE TABLE {} ({} text)").format(
            sql.Identifier("tâble_表"), sql.Identifier("colonne_列")))
        c.cursor().executemany(sql.SQL("INSERT INTO {} VALUES (%s)").format(
            sql.Identifier("tâble_表")), [(v,) for v in vals])
        cur = c.execute(sql.SQL("SELECT {} FROM {}").format(
            sql.Identifier("colonne_列"), sql.Identifier("tâble_表")))
        assert cur.description[0].name == "colonne_列"
        assert [r[0] for r in cur] == vals
        c.execute("CREATE TABLE données (valeur text)")
        c.execute("INSERT INTO données SELECT * FROM " + '"tâble_表"')
    # client_encoding in the startup packet: the server converts both ways.
    with proxy.connect(client_encoding="LATIN1") as c:
        assert c.execute("SHOW client_encoding").fetchone()[0] == "LATIN1"
        assert c.info.encoding == "iso8859-1"
        got = c.execute("SELECT valeur FROM données WHERE valeur LIKE 'é%%'").fetchone()[0]
        assert got == "é à ü"
        with pytest.raises(errors.UntranslatableCharacter):
            c.execute("SELECT valeur FROM données WHERE valeur LIKE 'emoji%%'").fetchone()
    with proxy.connect() as c:
        c.execute(sql.SQL("DROP TABLE {}, données").format(sql.Identifier("tâble_表")))


def next_notify(conn, timeout):
    """The next notification, waiting at most timeout seconds for bytes on the socket (so an
    idle client sees it arrive without sending anything)."""
    gen = conn.notifies()
    try:
        ready, _, _ = select.select([conn.fileno()], [], [], timeout)
        assert ready, f"no notification within {timeout}s"
        n = next(gen)
        return (n.channel, n.payload)
    finally:
        gen.close()


def test_listen_notify_across_sessions(proxy):
    with proxy.connect() as listener, proxy.connect() as notifier:
        listener.execute("LISTEN pg3_chan")
        got = []
        listener.add_notify_handler(lambda n: got.append((n.channel, n.payload)))
        notifier.execute("NOTIFY pg3_chan, 'one'")
        notifier.execute("SELECT pg_notify('pg3_chan', 'two ✓')")
        time.sleep(0.2)
        listener.execute("SELECT 1")  # notifications arrive with (or before) this result
        assert got == [("pg3_chan", "one"), ("pg3_chan", "two ✓")]
        # A notification that arrives while the listener is idle is relayed at once (the
        # proxy must forward it without waiting for the client to send something).
        got.clear()
        notifier.execute("NOTIFY pg3_chan, 'three'")
        assert next_notify(listener, 10) == ("pg3_chan", "three")


# ---- pipeline mode


def test_pipeline_mode(proxy):
    with proxy.connect() as c:
        c.execute("CREATE TEMP TABLE pg3_pipe (id int PRIMARY KEY, v text)")
        with c.pipeline() as p:
            curs = []
            for i in range(500):
                c.execute("INSERT INTO pg3_pipe VALUES (%s, %s)", (i, f"v{i}"))
            for i in range(0, 500, 50):
                curs.append(c.execute("SELECT v FROM pg3_pipe WHERE id = %s", (i,)))
            p.sync()
            assert [cur.fetchone()[0] for cur in curs] == [f"v{i}" for i in range(0, 500, 50)]
        # An error inside a pipeline aborts the rest of that pipeline until the next Sync.
        with pytest.raises(errors.UniqueViolation):
            with c.pipeline():
                c.execute("INSERT INTO pg3_pipe VALUES (%s, %s)", (1, "dup"))
                c.execute("INSERT INTO pg3_pipe VALUES (%s, %s)", (1000, "skipped"))
        assert c.execute("SELECT count(*) FROM pg3_pipe").fetchone()[0] == 500
        with c.pipeline():
            c.execute("INSERT INTO pg3_pipe VALUES (%s, %s)", (1001, "after"))
        assert c.execute("SELECT v FROM pg3_pipe WHERE id = 1001").fetchone()[0] == "after"


# ---- async


def test_async_queries_errors_cancel_notify(proxy, pg, slow):
    async def main():
        async with await psycopg.AsyncConnection.connect(proxy.dsn(), autocommit=True) as c:
            cur = await c.execute("SELECT sum(g) FROM generate_series(1, 10000) g")
            assert (await cur.fetchone())[0] == 50005000
            with pytest.raises(errors.DivisionByZero):
                await c.execute("SELECT 1/0")
            assert (await (await c.execute("SELECT 'ok'")).fetchone())[0] == "ok"

            # Many connections at once, each running queries concurrently.
            async def worker(i):
                async with await psycopg.AsyncConnection.connect(proxy.dsn()) as wc:
                    total = 0
                    for j in range(20):
                        cur = await wc.execute("SELECT %s::int + %s::int", (i, j))
                        total += (await cur.fetchone())[0]
                    return total
            results = await asyncio.gather(*(worker(i) for i in range(16)))
            assert results == [20 * i + 190 for i in range(16)]

            # Cancel from asyncio: cancelling the task makes psycopg send a CancelRequest.
            task = asyncio.create_task(c.execute("SELECT pg_sleep(60)"))
            await asyncio.sleep(0.5)
            t0 = time.monotonic()
            c.cancel()
            with pytest.raises(errors.QueryCanceled):
                await task
            assert time.monotonic() - t0 < 10 * slow

            # Notifications through the async generator.
            await c.execute("LISTEN pg3_async")
            async with await psycopg.AsyncConnection.connect(proxy.dsn(),
                                                             autocommit=True) as n:
                await n.execute("NOTIFY pg3_async, 'async hello'")
            gen = c.notifies()
            note = await asyncio.wait_for(gen.__anext__(), 10)
            await gen.aclose()
            assert (note.channel, note.payload) == ("pg3_async", "async hello")

            # Async pipeline.
            async with c.pipeline():
                curs = [await c.execute("SELECT %s::int", (i,)) for i in range(100)]
            vals = [(await cur.fetchone())[0] for cur in curs]
            assert vals == list(range(100))

            # Async COPY.
            await c.execute("CREATE TEMP TABLE pg3_acopy (v int)")
            async with c.cursor().copy("COPY pg3_acopy FROM STDIN") as cp:
                for i in range(1000):
                    await cp.write_row((i,))
            cur = await c.execute("SELECT count(*), sum(v) FROM pg3_acopy")
            assert await cur.fetchone() == (1000, 499500)

    asyncio.run(main())
