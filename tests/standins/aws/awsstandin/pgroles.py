"""Temporary database passwords, applied to the PostgreSQL behind a cluster or workgroup.

GetClusterCredentials and friends mint a password and store it on the PostgreSQL role named
exactly like the returned DbUser ("IAM:alice", "IAMA:bob", "IAMR:role"), with VALID UNTIL set to
the Expiration, so PostgreSQL itself refuses the password once it expires. The password is sent
as a ready-made verifier (md5 or SCRAM-SHA-256, chosen per cluster), so the plain text never
reaches the server's logs and both upstream password exchanges get exercised.

Known divergence from Redshift: a role holds one password, so minting a new one for a user
invalidates the previous one at once, where Redshift keeps every issued password valid until its
own expiry.
"""

import base64
import hashlib
import hmac
import secrets
import threading
import time

import psycopg
from psycopg import sql

SCRAM_ITERATIONS = 4096

_locks = {}
_locks_guard = threading.Lock()


def _lock_for(key):
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def mint_password():
    """A password shaped like Redshift's: base64 text ending in '==' that contains '/' and '+',
    so a client that forgets to encode it somewhere breaks visibly."""
    while True:
        pw = base64.b64encode(secrets.token_bytes(31)).decode()
        if "/" in pw and "+" in pw:
            return pw


def md5_verifier(password, role):
    return "md5" + hashlib.md5((password + role).encode()).hexdigest()


def scram_verifier(password, salt=None, iterations=SCRAM_ITERATIONS):
    """PostgreSQL's stored SCRAM-SHA-256 secret (RFC 5802/7677). Passwords here are ASCII, for
    which SASLprep is the identity."""
    salt = salt or secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def _valid_until(epoch):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch)) + \
        f".{int((epoch % 1) * 1000):03d}+00"


class PgApplyError(Exception):
    """PostgreSQL could not be reached or refused the change."""


def apply_password(dsn, role, password, expires, encryption, create, groups=()):
    """Stores `password` on `role` until `expires` (epoch seconds).

    Returns "updated", "created" or "missing" (the role does not exist and `create` is False:
    like Redshift, the API call succeeds and the login fails later). Existing roles in `groups`
    are granted to the role; missing groups are skipped.
    """
    verifier = (scram_verifier(password) if encryption == "scram-sha-256"
                else md5_verifier(password, role))
    with _lock_for((dsn, role)):
        try:
            with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
                exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                      (role,)).fetchone()
                if not exists and not create:
                    return "missing", []
                stmt = sql.SQL("{} ROLE {} WITH LOGIN PASSWORD {} VALID UNTIL {}").format(
                    sql.SQL("ALTER" if exists else "CREATE"), sql.Identifier(role),
                    sql.Literal(verifier), sql.Literal(_valid_until(expires)))
                conn.execute(stmt)
                joined = []
                for group in groups:
                    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                    (group,)).fetchone():
                        conn.execute(sql.SQL("GRANT {} TO {}").format(
                            sql.Identifier(group), sql.Identifier(role)))
                        joined.append(group)
                return ("updated" if exists else "created"), joined
        except psycopg.Error as e:
            raise PgApplyError(f"{type(e).__name__}: {str(e).strip()}") from e


def ensure_roles(dsn, users, groups):
    """Creates the world's pre-existing database users ("IAM:<user>", able to log in once a
    password is minted) and groups (NOLOGIN roles) when missing."""
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
            for name, login in [(g, False) for g in groups] + [("IAM:" + u, True) for u in users]:
                with _lock_for((dsn, name)):
                    if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                        (name,)).fetchone():
                        conn.execute(sql.SQL("CREATE ROLE {} {}").format(
                            sql.Identifier(name), sql.SQL("LOGIN" if login else "NOLOGIN")))
    except psycopg.Error as e:
        raise PgApplyError(f"{type(e).__name__}: {str(e).strip()}") from e
