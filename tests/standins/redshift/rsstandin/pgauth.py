"""Password exchanges of the Redshift stand-in, as pure functions.

Server side: Redshift's SHA-256 "extensible digest" (authentication code 13, reference §1.3):
the request layout, and the check of the client's answer d2 = SHA256(SHA256(password || salt)
|| server_nonce || client_nonce). Client side (logging a digest user in to PostgreSQL on its
behalf): cleartext, MD5 and SCRAM-SHA-256 without channel binding (RFC 5802 / 7677), the
exchanges PostgreSQL 15 can ask for. No sockets here.
"""

import base64
import hashlib
import hmac
import os
import struct

from .wire import ProtocolError

AUTH_OK = 0
AUTH_CLEARTEXT = 3
AUTH_MD5 = 5
AUTH_SASL = 10
AUTH_SASL_CONTINUE = 11
AUTH_SASL_FINAL = 12
AUTH_DIGEST = 13


# -- Redshift's digest (server side)

def digest_stored(password, salt):
    """d1, what Redshift stores for 'sha256|digest|salt' users."""
    return hashlib.sha256(password.encode("utf-8") + salt).digest()


def digest_request(salt, server_nonce, algo=0):
    """Payload of AuthenticationRequest code 13 after the code."""
    return (struct.pack("!I", algo) + struct.pack("!I", len(salt)) + salt +
            struct.pack("!I", len(server_nonce)) + server_nonce)


def parse_digest_answer(body):
    """The client's 'd' message body -> (d2, client_nonce bytes)."""
    if len(body) < 8:
        raise ProtocolError("digest answer too short")
    (n,) = struct.unpack_from("!I", body, 0)
    if n != 32 or 4 + n + 4 > len(body):
        raise ProtocolError("digest answer: bad digest length")
    d2 = bytes(body[4:4 + n])
    (m,) = struct.unpack_from("!I", body, 4 + n)
    if 8 + n + m != len(body) or m > 64:
        raise ProtocolError("digest answer: bad nonce length")
    return d2, bytes(body[8 + n:])


def digest_check(stored_d1, server_nonce, d2, client_nonce):
    want = hashlib.sha256(stored_d1 + server_nonce + client_nonce).digest()
    return hmac.compare_digest(want, d2)


# -- PostgreSQL client side

def md5_answer(user, password, salt):
    inner = hashlib.md5(password.encode("utf-8") + user.encode("utf-8")).hexdigest()
    return "md5" + hashlib.md5(inner.encode("ascii") + salt).hexdigest()


class ScramClient:
    """SCRAM-SHA-256 without channel binding, as libpq does it over TLS without 'p'."""

    def __init__(self, password):
        self.password = password.encode("utf-8")
        self.nonce = base64.b64encode(os.urandom(18)).decode("ascii")
        self.client_first_bare = f"n=,r={self.nonce}"
        self.server_signature = None

    def first(self):
        return ("n,," + self.client_first_bare).encode("ascii")

    def final(self, server_first):
        sf = server_first.decode("ascii")
        attrs = dict(kv.split("=", 1) for kv in sf.split(","))
        r, s, i = attrs.get("r"), attrs.get("s"), attrs.get("i")
        if not r or not r.startswith(self.nonce) or s is None or i is None:
            raise ProtocolError("bad SCRAM server-first-message")
        salt = base64.b64decode(s)
        salted = hashlib.pbkdf2_hmac("sha256", self.password, salt, int(i))
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={r}"
        auth_message = f"{self.client_first_bare},{sf},{without_proof}".encode("ascii")
        signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        self.server_signature = hmac.new(server_key, auth_message, hashlib.sha256).digest()
        return f"{without_proof},p={base64.b64encode(proof).decode('ascii')}".encode("ascii")

    def verify(self, server_final):
        sf = server_final.decode("ascii")
        if not sf.startswith("v="):
            raise ProtocolError("SCRAM server-final-message has no verifier")
        if not hmac.compare_digest(base64.b64decode(sf[2:]), self.server_signature or b""):
            raise ProtocolError("SCRAM server signature does not match")
