"""Volume through rsproxy: a 500 MB result streamed (exact byte count, RSS of rsproxy sampled
all along and bounded), a 500 MB COPY TO STDOUT, a 200 MB COPY FROM STDIN, single messages of
100 MB each way, and a psycopg client streaming a large result. rsproxy forwards by length
with backpressure, so its memory must not grow with the data."""

import struct
import threading
import time

import psycopg

import pgwire
from pgharness import rss_budget_kb

ROW_BYTES = 1000
ROWS = 500_000  # 500 MB of column data


class RssSampler:
    """Samples rsproxy's VmRSS every 50 ms while a transfer runs."""

    def __init__(self, proxy):
        self.proxy = proxy
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.proxy.rss_kb())
                self.samples += 1
            except (OSError, ValueError):
                pass
            self._stop.wait(0.05)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def stream_messages(sock, on_message, until=b"Z"):
    """Parses backend messages from sock without copying the stream around; calls
    on_message(type, view_of_body) for each; returns at a message of type `until`."""
    buf = bytearray()
    pos = 0
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise AssertionError("connection closed mid-stream")
        buf += chunk
        while len(buf) - pos >= 5:
            t = buf[pos:pos + 1]
            (ln,) = struct.unpack_from("!I", buf, pos + 1)
            if len(buf) - pos < 1 + ln:
                break
            on_message(bytes(t), memoryview(buf)[pos + 5:pos + 1 + ln])
            pos += 1 + ln
            if bytes(t) == until:
                return
        if pos > (8 << 20):
            del buf[:pos]
            pos = 0


def raw_session(proxy):
    c = pgwire.RawConn(proxy.host, proxy.port, timeout=120)
    c.login("scramuser", "rsdb", {"application_name": "large"})
    return c


def test_500mb_result_streamed(proxy):
    counts = {"rows": 0, "bytes": 0, "errors": [], "bad": 0}

    def on_message(t, body):
        if t == b"D":
            counts["rows"] += 1
            counts["bytes"] += len(body) + 5
            (n, ln) = struct.unpack_from("!Hi", body, 0)
            if n != 1 or ln != ROW_BYTES or body[6] != 0x78 or body[-1] != 0x78:
                counts["bad"] += 1
        elif t == b"E":
            counts["errors"].append(bytes(body))

    with raw_session(proxy) as c, RssSampler(proxy) as rss:
        c.send(pgwire.query(f"SELECT repeat('x', {ROW_BYTES}) FROM generate_series(1, {ROWS})"))
        stream_messages(c.sock, on_message)
    assert counts["errors"] == []
    assert counts["rows"] == ROWS and counts["bad"] == 0
    # DataRow: type(1) + length(4) + column count(2) + column length(4) + value.
    assert counts["bytes"] == ROWS * (1 + 4 + 2 + 4 + ROW_BYTES)
    assert rss.samples > 5
    assert rss.peak < rss_budget_kb(64), f"rsproxy peak RSS {rss.peak} kB for a 500 MB result"


def test_500mb_copy_to_stdout(proxy):
    counts = {"bytes": 0, "msgs": 0, "tag": None}

    def on_message(t, body):
        if t == b"d":
            counts["bytes"] += len(body)
            counts["msgs"] += 1
        elif t == b"C":
            counts["tag"] = bytes(body).rstrip(b"\0").decode()
        elif t == b"E":
            raise AssertionError(pgwire.Msg(t, bytes(body)).fields())

    with raw_session(proxy) as c, RssSampler(proxy) as rss:
        c.send(pgwire.query(f"COPY (SELECT repeat('y', {ROW_BYTES - 1}) FROM "
                            f"generate_series(1, {ROWS})) TO STDOUT"))
        stream_messages(c.sock, on_message)
    assert counts["tag"] == f"COPY {ROWS}"
    assert counts["bytes"] == ROWS * ROW_BYTES  # 999 bytes and a newline per row
    assert rss.peak < rss_budget_kb(64), f"rsproxy peak RSS {rss.peak} kB for COPY TO"


def test_200mb_copy_from_stdin(proxy, pg):
    pg.sql("CREATE TABLE big_in (v text)", dbname="rsdb")
    pg.sql("GRANT ALL ON big_in TO scramuser", dbname="rsdb")
    rows = 200_000
    line = b"z" * (ROW_BYTES - 1) + b"\n"
    chunk = pgwire.msg(b"d", line * 64)
    with raw_session(proxy) as c, RssSampler(proxy) as rss:
        c.send(pgwire.query("COPY big_in FROM STDIN"))
        m = c.recv_msg()
        assert m.type == b"G", m
        for _ in range(rows // 64):
            c.send(chunk)
        c.send(pgwire.msg(b"c"))
        rows_, tags, errors = c.collect(timeout=120)
        assert errors == [] and tags == [f"COPY {rows}"]
    assert rss.peak < rss_budget_kb(64), f"rsproxy peak RSS {rss.peak} kB for COPY FROM"
    assert pg.sql_value("SELECT count(*) FROM big_in", dbname="rsdb") == rows
    assert pg.sql_value("SELECT sum(length(v)) FROM big_in", dbname="rsdb") == \
        rows * (ROW_BYTES - 1)
    pg.sql("DROP TABLE big_in", dbname="rsdb")


def test_100mb_single_messages_both_ways(proxy):
    size = 100 * 1024 * 1024
    with raw_session(proxy) as c, RssSampler(proxy) as rss:
        # One DataRow of 100 MB from the server.
        got = {}

        def on_message(t, body):
            if t == b"D":
                got["len"] = struct.unpack_from("!i", body, 2)[0]
                got["tail"] = bytes(body[-4:])
        c.send(pgwire.query(f"SELECT repeat('q', {size})"))
        stream_messages(c.sock, on_message)
        assert got == {"len": size, "tail": b"qqqq"}
        # One Query of 100 MB from the client (not COPY/UNLOAD, so not buffered to rewrite).
        c.send(pgwire.query("SELECT length('" + "w" * size + "')"))
        rows, _, errors = c.collect(timeout=120)
        assert errors == [] and rows == [[str(size)]]
    assert rss.peak < rss_budget_kb(64), f"rsproxy peak RSS {rss.peak} kB for 100 MB messages"


def test_psycopg_streams_a_large_result(proxy):
    total = 0
    n = 0
    t0 = time.monotonic()
    with psycopg.connect(proxy.dsn()) as c, RssSampler(proxy) as rss:
        for (v,) in c.cursor().stream("SELECT repeat('s', 2000) FROM generate_series(1, 50000)"):
            total += len(v)
            n += 1
    assert n == 50000 and total == 100_000_000
    assert rss.peak < rss_budget_kb(64)
    assert time.monotonic() - t0 < 300
