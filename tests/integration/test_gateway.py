"""The README's quick-start command, tests/local-gateway.sh, run as a newcomer would (minus the
install and build steps, which run-tests.sh has just done): it must print a psql line that
reaches the demo data through rsproxy over verified TLS, keep the demo password out of its
output, and clean everything up on Ctrl-C."""

import os
import re
import signal
import subprocess
import threading
import time

import pytest

from pgharness import free_port, pg_bin, wait_until

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "local-gateway.sh")


@pytest.fixture
def gateway(rsproxy_bin, workdir):
    state = os.path.join(workdir, "gateway-state")
    env = dict(os.environ, RSPROXY_SKIP_INSTALL="1", RSPROXY_BIN=rsproxy_bin,
               RSPROXY_GATEWAY_DIR=state, RSPROXY_GATEWAY_PORT=str(free_port()),
               RSPROXY_GATEWAY_PG_PORT=str(free_port()), RSPROXY_GATEWAY_ADMIN_PORT="0")
    proc = subprocess.Popen(["bash", SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=env, start_new_session=True)
    lines = []

    def reader():
        for raw in proc.stdout:
            lines.append(raw.decode("utf-8", "replace"))
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    g = {"proc": proc, "lines": lines, "state": state, "env": env, "reader": t}
    yield g
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_local_gateway_end_to_end(gateway, slow):
    proc, lines = gateway["proc"], gateway["lines"]

    def psql_line():
        if proc.poll() is not None:
            raise AssertionError("local-gateway.sh exited:\n" + "".join(lines))
        for line in lines:
            m = re.match(r'\s+psql "([^"]+)"\s*$', line)
            if m:
                return m.group(1)
    dsn = wait_until(psql_line, 90 * slow, what="the psql line")
    assert "sslmode=disable" in dsn and f"port={gateway['env']['RSPROXY_GATEWAY_PORT']}" in dsn

    out = subprocess.run([pg_bin("psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", dsn,
                          "-c", "SELECT count(*) FROM events",
                          "-c", "SELECT count(*) > 0 FROM daily_revenue",
                          "-c", "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                          "-c", "SELECT current_user"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1000", "t", "t", "demo"]

    state = gateway["state"]
    with open(os.path.join(state, "upstream-password")) as f:
        password = f.read().strip()
    ini = os.path.join(state, "rsproxy.ini")
    assert oct(os.stat(ini).st_mode & 0o777) == "0o600"
    with open(ini) as f:
        text = f.read()
    assert "sslmode = verify-full" in text and password not in text

    # Ctrl-C: the script stops rsproxy and PostgreSQL and removes its state.
    os.kill(proc.pid, signal.SIGINT)
    rc = proc.wait(30 * slow)
    gateway["reader"].join(5)
    output = "".join(lines)
    assert rc == 0, output
    assert not os.path.exists(state)
    assert password not in output
    assert "rsproxy stopped" in output or "stopping" in output
    # Nothing listens any more.
    for key in ("RSPROXY_GATEWAY_PORT", "RSPROXY_GATEWAY_PG_PORT"):
        port = int(gateway["env"][key])
        wait_until(lambda: port_closed(port), 10, what=f"port {port} to close")


def port_closed(port):
    import socket
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except OSError:
        return True


def test_local_gateway_refuses_a_busy_port(rsproxy_bin, workdir):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    busy = s.getsockname()[1]
    try:
        env = dict(os.environ, RSPROXY_SKIP_INSTALL="1", RSPROXY_BIN=rsproxy_bin,
                   RSPROXY_GATEWAY_DIR=os.path.join(workdir, "gw-busy"),
                   RSPROXY_GATEWAY_PORT=str(busy), RSPROXY_GATEWAY_PG_PORT=str(free_port()),
                   RSPROXY_GATEWAY_ADMIN_PORT="0")
        t0 = time.monotonic()
        p = subprocess.run(["bash", SCRIPT], capture_output=True, text=True, env=env,
                           timeout=60)
        assert p.returncode != 0
        assert f"port {busy} is in use" in p.stderr
        assert time.monotonic() - t0 < 30
    finally:
        s.close()
