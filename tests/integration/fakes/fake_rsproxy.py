#!/usr/bin/python3
"""A stand-in for the rsproxy binary used only by test_harness.py, to prove that the harness
notices a bad exit: it listens where the INI says and, on SIGTERM, behaves as
FAKE_RSPROXY_MODE asks (clean, asan, ubsan, secret, abort, exit3)."""
import configparser
import os
import signal
import socket
import sys

ini = sys.argv[sys.argv.index("-c") + 1]
cp = configparser.ConfigParser(inline_comment_prefixes=(";",))
cp.read(ini)
mode = os.environ.get("FAKE_RSPROXY_MODE", "clean")
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((cp["proxy"]["listen_addr"], int(cp["proxy"]["listen_port"])))
s.listen(16)


def on_term(signum, frame):
    if mode == "asan":
        sys.stderr.write("==1==ERROR: AddressSanitizer: heap-use-after-free on address 0x1\n")
        os._exit(1)
    if mode == "ubsan":
        sys.stderr.write("proxy/px_conn.c:10:5: runtime error: signed integer overflow\n")
        os._exit(0)
    if mode == "secret":
        sys.stderr.write("login with password=%s\n" % cp["upstream"]["password"])
        os._exit(0)
    if mode == "abort":
        signal.signal(signal.SIGABRT, signal.SIG_DFL)
        os.abort()
    if mode == "exit3":
        os._exit(3)
    os._exit(0)


signal.signal(signal.SIGTERM, on_term)
while True:
    c, _ = s.accept()
    c.close()
