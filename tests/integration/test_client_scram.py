"""Client authentication to rsproxy with client_auth = scram-sha-256 against an auth file that
holds plaintext passwords, a SCRAM verifier and (by omission) unknown users.

Real clients (psycopg/libpq, psql) log in as known users; a raw SCRAM client written here sees
the wire: wrong passwords and unknown users go through the same messages and end in the same
FATAL 28P01 "password authentication failed for user ...", the salt and iteration count a
client sees are stable per user (a plaintext entry is turned into a verifier once, when the file
is loaded, not on every login; an unknown user gets a mock verifier derived from the name), a
reload that changes a plaintext password takes effect, a broken file is refused at startup and
on reload, and a flood of logins with made-up names does not stop an open session from being
served. (That no login runs PBKDF2 is proven at unit level: tests/unit/test_px_authfile.c
counts the calls.)
"""

import base64
import hmac
import os
import struct
import subprocess
import threading

import psycopg
import pytest

import pgwire
from pgharness import pg_bin, scram_keys, scram_verifier

ALICE_PW = "alice-first-password"
ALICE_PW2 = "alice-second-password"
VERA_PW = "vera-verifier-password"
QUOTE_USER = 'o"brien q'
QUOTE_PW = 'pass "with" quotes'
BOB_PW = "bob-added-on-reload"
VERA_SALT = b"vera-fixed-salt!"


def write_authfile(path, entries):
    q = lambda s: '"' + s.replace('"', '""') + '"'  # noqa: E731
    with open(path + ".tmp", "w") as f:
        f.write("; rsproxy client auth file (test)\n")
        for user, secret in entries.items():
            f.write(f"{q(user)} {q(secret)}\n")
    os.replace(path + ".tmp", path)  # a reload never reads a half-written file


def base_entries():
    return {"alice": ALICE_PW, "vera": scram_verifier(VERA_PW, VERA_SALT), QUOTE_USER: QUOTE_PW}


@pytest.fixture
def scram_proxy(proxy_factory, workdir, request):
    path = os.path.join(workdir, f"users-{request.node.name[:40]}.txt".replace("/", "_"))
    write_authfile(path, base_entries())
    p = proxy_factory({"proxy": {"client_auth": "scram-sha-256", "auth_file": path},
                       "upstream": {"user": "scramuser"}})
    p.secrets.update([ALICE_PW, ALICE_PW2, VERA_PW, QUOTE_PW, BOB_PW])
    p.authfile = path
    return p


class Attempt:
    """What a raw SCRAM client saw: the authentication codes in order, server-first, and the
    ErrorResponse fields (None when the login succeeded)."""

    def __init__(self):
        self.codes = []
        self.server_first = None
        self.error = None
        self.server_verified = False

    @property
    def salt_and_iterations(self):
        attrs = dict(a.split("=", 1) for a in self.server_first.split(","))
        return attrs["s"], int(attrs["i"])


def scram_login(proxy, user, password=None, database="rsdb", timeout=20.0):
    """A SCRAM-SHA-256 login over a raw socket. With password None the client-final carries a
    random proof (what a guesser without PBKDF2 sends); otherwise a correct one for password,
    and the server's signature is checked."""
    a = Attempt()
    with pgwire.RawConn(proxy.host, proxy.port, timeout=timeout) as c:
        c.send(pgwire.startup({"user": user, "database": database}))
        m = c.recv_msg()
        assert m.type == b"R", m
        a.codes.append(m.auth_code())
        assert m.auth_code() == 10, m
        assert m.body[4:] == b"SCRAM-SHA-256\0\0", m.body
        cnonce = base64.b64encode(os.urandom(18)).decode()
        first_bare = f"n=,r={cnonce}"
        first = ("n,," + first_bare).encode()
        c.send(pgwire.msg(b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first))
        m = c.recv_msg()
        if m.type == b"E":
            a.error = m.fields()
            return a
        a.codes.append(m.auth_code())
        assert m.auth_code() == 11, m
        a.server_first = m.body[4:].decode()
        attrs = dict(x.split("=", 1) for x in a.server_first.split(","))
        assert attrs["r"].startswith(cnonce) and len(attrs["r"]) > len(cnonce)
        final_wo_proof = f"c=biws,r={attrs['r']}"
        server_key = None
        if password is None:
            proof = os.urandom(32)
        else:
            client_key, stored, server_key = scram_keys(password, base64.b64decode(attrs["s"]),
                                                        int(attrs["i"]))
            auth_msg = f"{first_bare},{a.server_first},{final_wo_proof}".encode()
            sig = hmac.new(stored, auth_msg, "sha256").digest()
            proof = bytes(x ^ y for x, y in zip(client_key, sig))
        final = f"{final_wo_proof},p={base64.b64encode(proof).decode()}".encode()
        c.send(pgwire.msg(b"p", final))
        while True:
            m = c.recv_msg()
            if m.type == b"E":
                a.error = m.fields()
                assert c.wait_closed(timeout) == [], "messages after the FATAL error"
                return a
            if m.type == b"R":
                a.codes.append(m.auth_code())
                if m.auth_code() == 12:
                    assert server_key is not None, "server-final for a made-up proof"
                    want = hmac.new(server_key, auth_msg, "sha256").digest()
                    assert m.body[4:].decode() == "v=" + base64.b64encode(want).decode()
                    a.server_verified = True
            if m.type == b"Z":
                c.send(pgwire.terminate())
                return a


def connect(proxy, user, password):
    return psycopg.connect(proxy.dsn(user=user, password=password), autocommit=True)


def upstream_user(proxy, user, password):
    with connect(proxy, user, password) as c:
        return c.execute("SELECT current_user").fetchone()[0]


def reload_and_wait(proxy, word):
    before = proxy.log_text().count(word)
    proxy.reload()
    proxy.wait_until(lambda: proxy.log_text().count(word) > before, 30,
                     what=f"'{word}' in the log after SIGHUP")


# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("user,password", [("alice", ALICE_PW), ("vera", VERA_PW),
                                           (QUOTE_USER, QUOTE_PW)])
def test_known_users_log_in(scram_proxy, user, password):
    """libpq (psycopg) and a raw client that checks the proxy's server signature."""
    assert upstream_user(scram_proxy, user, password) == "scramuser"
    a = scram_login(scram_proxy, user, password)
    assert a.error is None, a.error
    assert a.codes == [10, 11, 12, 0]
    assert a.server_verified


def test_psql_logs_in(scram_proxy):
    env = dict(os.environ, PGPASSWORD=ALICE_PW, LANG="C.UTF-8", LC_ALL="C.UTF-8")
    p = subprocess.run([pg_bin("psql"), "-X", "-At", "-d", scram_proxy.dsn(user="alice"),
                        "-c", "SELECT current_user"], capture_output=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().strip() == "scramuser"
    env["PGPASSWORD"] = "not-alices-password"
    p = subprocess.run([pg_bin("psql"), "-X", "-At", "-d", scram_proxy.dsn(user="alice"),
                        "-c", "SELECT 1"], capture_output=True, env=env, timeout=60)
    assert p.returncode != 0
    assert 'password authentication failed for user "alice"' in p.stderr.decode()


def test_wrong_password_and_unknown_user_look_the_same(scram_proxy):
    cases = [("alice", "wrong-password-1"), ("vera", "wrong-password-2"),
             (QUOTE_USER, "wrong-password-3"), ("mallory", "any-password-4"),
             ("mallory", None), ("alice", None)]
    shapes = []
    for user, password in cases:
        a = scram_login(scram_proxy, user, password)
        assert a.error is not None, (user, "logged in")
        assert a.error.get("C") == "28P01", a.error
        assert a.error.get("M") == f'password authentication failed for user "{user}"'
        salt, iterations = a.salt_and_iterations
        # Everything but the user name in the message: severity, fields, the message sequence,
        # the salt's length and the iteration count.
        shapes.append((a.codes, a.error.get("S"), a.error.get("V"), sorted(a.error),
                       len(base64.b64decode(salt)), iterations))
    assert all(s == shapes[0] for s in shapes), shapes
    assert shapes[0][:2] == ([10, 11], "FATAL")
    # What libpq reports is the same text too, user name aside.
    texts = []
    for user, password in (("alice", "wrong-password-5"), ("nobody-here", "wrong-password-6")):
        with pytest.raises(psycopg.OperationalError) as ei:
            connect(scram_proxy, user, password)
        msg = str(ei.value)
        assert f'password authentication failed for user "{user}"' in msg, msg
        texts.append(msg.replace(user, "<user>"))
    assert texts[0] == texts[1]
    # The proxy still serves the right password after all that.
    assert upstream_user(scram_proxy, "alice", ALICE_PW) == "scramuser"


def test_salts_are_stable_per_user(scram_proxy):
    """A plaintext entry is stretched once at load: every login sees the same salt (a verifier
    made per login would show a fresh random salt each time). Unknown users see a salt of their
    own that does not change either, like a real user's."""
    def salt(user):
        return scram_login(scram_proxy, user).salt_and_iterations

    assert salt("alice") == salt("alice") == salt("alice")
    assert salt(QUOTE_USER) == salt(QUOTE_USER)
    assert salt("vera") == (base64.b64encode(VERA_SALT).decode(), 4096)
    assert salt("mallory") == salt("mallory")
    assert salt("mallory") != salt("mallorz")
    assert salt("mallory") != salt("alice")
    for user in ("alice", "mallory"):
        s, i = salt(user)
        assert len(base64.b64decode(s)) == 16 and i == 4096


def test_reload_changes_plaintext_password(scram_proxy):
    p = scram_proxy
    alice_salt = scram_login(p, "alice").salt_and_iterations
    mock_salt = scram_login(p, "mallory").salt_and_iterations
    entries = base_entries()
    entries["alice"] = ALICE_PW2
    entries["bob"] = BOB_PW
    del entries["vera"]
    write_authfile(p.authfile, entries)
    reload_and_wait(p, "configuration reloaded")
    assert upstream_user(p, "alice", ALICE_PW2) == "scramuser"
    assert upstream_user(p, "bob", BOB_PW) == "scramuser"
    assert upstream_user(p, QUOTE_USER, QUOTE_PW) == "scramuser"
    for user, password in (("alice", ALICE_PW), ("vera", VERA_PW)):
        a = scram_login(p, user, password)
        assert a.error and a.error.get("C") == "28P01", (user, a.error)
    # A changed password comes with a new salt; the unknown user's mock is unchanged.
    assert scram_login(p, "alice").salt_and_iterations != alice_salt
    assert scram_login(p, "mallory").salt_and_iterations == mock_salt


def test_reload_with_a_broken_file_keeps_the_old_one(scram_proxy):
    p = scram_proxy
    with open(p.authfile, "a") as f:
        f.write('"carol" "SCRAM-SHA-256$4096:c2FsdA==$a2V5:c2Vydg=="\n')
    reload_and_wait(p, "reload failed")
    assert p.log_contains(rf"{p.authfile}:5: malformed SCRAM-SHA-256 verifier")
    assert upstream_user(p, "alice", ALICE_PW) == "scramuser"
    write_authfile(p.authfile, {"alice": ""})
    reload_and_wait(p, "reload failed")
    assert p.log_contains(rf"{p.authfile}:2: empty password")
    assert upstream_user(p, "vera", VERA_PW) == "scramuser"


def test_broken_file_refuses_to_start(proxy_factory, workdir):
    path = os.path.join(workdir, "users-broken.txt")
    with open(path, "w") as f:
        f.write('"alice" "fine-password"\n"bob" "md5' + "0" * 32 + '"\n')
    p = proxy_factory({"proxy": {"client_auth": "scram-sha-256", "auth_file": path}},
                      start=False)
    rc, log = p.start_expect_failure()
    assert rc != 0
    assert f"{path}:2: an MD5 secret cannot be used" in log


def test_unknown_user_flood_while_a_session_answers(scram_proxy):
    """Logins with made-up names from several threads at once (each name new, so nothing can
    be cached) while an open session keeps running queries: every attempt ends in 28P01 and
    every query is answered."""
    p = scram_proxy
    results, failures = [], []

    def flood(t):
        try:
            for i in range(40):
                a = scram_login(p, f"made-up-{t}-{i}")
                results.append(a.error.get("C") if a.error else "logged in")
        except Exception as e:  # noqa: BLE001 - reported below
            failures.append(repr(e))

    with connect(p, "alice", ALICE_PW) as session:
        threads = [threading.Thread(target=flood, args=(t,)) for t in range(6)]
        for t in threads:
            t.start()
        answered = 0
        while answered < 5 or any(t.is_alive() for t in threads):
            assert session.execute("SELECT %s::int + 1", (answered,)).fetchone()[0] == answered + 1
            answered += 1
        for t in threads:
            t.join()
        assert session.execute("SELECT 'still here'").fetchone()[0] == "still here"
    assert not failures, failures
    assert results == ["28P01"] * 240
