#!/usr/bin/python3
"""Developer aid, not part of ctest: runs Debian's pgbouncer 1.18 in place of rsproxy, taking
rsproxy's INI, so the client tests can be checked against a known relay:

    RSPROXY_BIN=tests/integration/fakes/pgbouncer_as_rsproxy.py \
        /usr/bin/python3 -m pytest -q tests/integration/test_psql.py

Client side plaintext with trust, server side TLS with the same sslmode and CA, session
pooling. Tests that need what pgbouncer lacks (a quick error on a wrong certificate, _pq_
options, rsproxy's config checks) are expected to fail here: that shows they can fail.
"""
import configparser
import os
import pwd
import sys
import tempfile

if "--version" in sys.argv:
    print("rsproxy 0.0.0 (pgbouncer stand-in)")
    sys.exit(0)
if "--check" in sys.argv:
    print("--check is not supported by the pgbouncer stand-in")
    sys.exit(2)
ini = sys.argv[sys.argv.index("-c") + 1]
cp = configparser.ConfigParser(inline_comment_prefixes=(";",), interpolation=None)
cp.read(ini)
px, up = cp["proxy"], cp["upstream"]
pw = pwd.getpwnam("postgres")
d = tempfile.mkdtemp(prefix="pgb-as-rsproxy-")
os.chown(d, pw.pw_uid, pw.pw_gid)
password = up.get("password", "")
users = ["scramuser", "md5user", "pwuser", "rsadmin", "postgres"]
with open(os.path.join(d, "users.txt"), "w") as f:
    for u in users:
        f.write(f'"{u}" "{password}"\n')
db = f"host={up['host']} port={up['port']}"
if up.get("user"):
    db += f" user={up['user']}"
sslmode = up.get("sslmode", "verify-full")
with open(os.path.join(d, "pgbouncer.ini"), "w") as f:
    f.write(f"""[databases]
* = {db}
[pgbouncer]
listen_addr = {px.get('listen_addr', '127.0.0.1')}
listen_port = {px['listen_port']}
unix_socket_dir = {px.get('unix_socket_dir', '')}
auth_type = trust
auth_file = {d}/users.txt
pool_mode = session
max_client_conn = {px.get('max_client_conn', '100')}
default_pool_size = 200
server_tls_sslmode = {sslmode}
server_tls_ca_file = {up.get('sslrootcert', '')}
ignore_startup_parameters = extra_float_digits,options,search_path
server_connect_timeout = {up.get('connect_timeout', '15')}
""")
for name in os.listdir(d):
    os.chown(os.path.join(d, name), pw.pw_uid, pw.pw_gid)
os.setgroups([])
os.setgid(pw.pw_gid)
os.setuid(pw.pw_uid)
os.execv("/usr/sbin/pgbouncer", ["pgbouncer", os.path.join(d, "pgbouncer.ini")])
