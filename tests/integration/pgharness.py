"""Processes for the integration tests, the benchmark and anything else that needs a real
PostgreSQL 15 with TLS and an rsproxy in front of it.

This module is plain Python (no pytest): fixtures_core.py wraps it in fixtures, and
tests/bench/bench_pgbench.py uses it directly. It knows how to
  - make a throwaway certificate authority and certificates (openssl CLI),
  - create, start, reconfigure and stop a PostgreSQL cluster as the postgres OS user,
  - write a full rsproxy INI file, start rsproxy (optionally under valgrind), wait until it
    accepts, and check on stop that it exited cleanly, without sanitizer reports and without
    secrets in its log.
It does not decide what a test expects: assertions live in the test files.
"""

import base64
import hashlib
import hmac
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time

PG_BIN = os.environ.get("RSPROXY_PG_BIN", "/usr/lib/postgresql/15/bin")
HERE = os.path.dirname(os.path.abspath(__file__))

# Lines that mean the process under test hit a memory or UB error, or leaked.
SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",  # UBSan
    "ERROR: ThreadSanitizer",
    "Invalid read of size",  # valgrind memcheck
    "Invalid write of size",
    "Conditional jump or move depends on uninitialised",
    "definitely lost in",
    "Syscall param",
)


class HarnessError(RuntimeError):
    """The environment or a process under test is not what the harness needs."""


def slow_factor():
    """Timeouts are multiplied by this under valgrind, which runs code 20-50x slower."""
    if os.environ.get("RSPROXY_VALGRIND"):
        return 20.0
    return float(os.environ.get("RSPROXY_SLOW_FACTOR", "1"))


def rss_budget_kb(mb):
    """An RSS ceiling for rsproxy: mb for a normal build, more where ASan's shadow memory and
    quarantine or valgrind inflate every process (the point is bounded, not small)."""
    factor = 1.0
    if os.environ.get("RSPROXY_SANITIZED") == "1":
        factor = 4.0
    if os.environ.get("RSPROXY_VALGRIND"):
        factor = 6.0
    return int(mb * 1024 * factor)


def pg_bin(name):
    path = os.path.join(PG_BIN, name)
    if not os.access(path, os.X_OK):
        raise HarnessError(f"{path} not found: run tests/install-deps.sh (postgresql-15)")
    return path


def free_port(host="127.0.0.1"):
    """A port that was free a moment ago. Callers that bind it later retry on collision."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, interval=0.05, what="condition"):
    """Polls predicate() until it returns a true value, which is returned; raises on timeout."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the predicate may fail until the thing is up
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc!r})" if last_exc else ""
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}{detail}")
        time.sleep(interval)


def is_root():
    return os.geteuid() == 0


def postgres_ids():
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        raise HarnessError("no postgres OS user: run tests/install-deps.sh (postgresql-15)")
    return pw.pw_uid, pw.pw_gid


def as_postgres(argv):
    """initdb, pg_ctl and pgbouncer refuse to run as root: run them as the postgres user."""
    if is_root():
        return ["runuser", "-u", "postgres", "--"] + list(argv)
    return list(argv)


def run_when_gone(argv, pid=None):
    """Starts a detached watcher that runs argv once process pid (default: this one) has gone.
    Daemons a test starts (postgres through pg_ctl, pgbouncer) are not our children, so a test
    runner killed by ctest's timeout would otherwise leave them running. Returns the watcher;
    terminate it after a clean stop."""
    pid = pid or os.getpid()
    script = (f"while kill -0 {pid} 2>/dev/null; do sleep 1; done; "
              + " ".join(shlex.quote(a) for a in argv) + " >/dev/null 2>&1")
    return subprocess.Popen(["sh", "-c", script], start_new_session=True, cwd="/",
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, close_fds=True)


def _die_with_parent():
    """preexec_fn: the child gets SIGKILL when the test runner dies (Linux prctl)."""
    import ctypes
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def give_to_postgres(path, mode=None):
    if mode is not None:
        os.chmod(path, mode)
    if is_root():
        uid, gid = postgres_ids()
        os.chown(path, uid, gid)


def make_workdir(prefix):
    """A temp dir that the postgres user can traverse (its cluster lives below it)."""
    d = tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("RSPROXY_TMPDIR"))
    os.chmod(d, 0o755)
    return d


def run(argv, timeout=120, **kw):
    """Runs a command to completion; raises HarnessError with its output when it fails."""
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
                       text=True, **kw)
    if p.returncode != 0:
        raise HarnessError(f"{' '.join(argv)} exited {p.returncode}:\n{p.stdout}")
    return p.stdout


# --------------------------------------------------------------------------------------------
# Certificates


class CertAuthority:
    """A CA made with the openssl CLI; issues server certificates with the SANs asked for.

    EC P-256 keys keep generation fast (milliseconds), so a session can afford several CAs.
    """

    def __init__(self, directory, name="rsproxy test CA"):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        self.key = os.path.join(directory, f"{slug}.key")
        self.cert = os.path.join(directory, f"{slug}.pem")
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", self.key, "-out", self.cert,
             "-days", "30", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        os.chmod(self.key, 0o600)
        # Readable by everyone (pgbouncer runs as postgres and reads it).
        os.chmod(self.cert, 0o644)

    def issue(self, name, sans, directory=None, owner_postgres=False):
        """Returns (cert_path, key_path) for a server certificate with subjectAltName sans,
        e.g. ["DNS:localhost", "IP:127.0.0.1"]."""
        directory = directory or self.dir
        os.makedirs(directory, exist_ok=True)
        key = os.path.join(directory, f"{name}.key")
        csr = os.path.join(directory, f"{name}.csr")
        crt = os.path.join(directory, f"{name}.crt")
        ext = os.path.join(directory, f"{name}.ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\n")
            f.write("keyUsage=critical,digitalSignature,keyEncipherment\n")
            f.write("extendedKeyUsage=serverAuth\n")
            f.write("subjectAltName=" + ",".join(sans) + "\n")
        cn = sans[0].split(":", 1)[1]
        run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", csr,
             "-subj", f"/CN={cn}"])
        run(["openssl", "x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key,
             "-set_serial", str(secrets.randbits(63)), "-days", "30", "-out", crt,
             "-extfile", ext])
        os.chmod(key, 0o600)
        os.chmod(crt, 0o644)
        if owner_postgres:
            give_to_postgres(key, 0o600)
            give_to_postgres(crt, 0o644)
        return crt, key


# --------------------------------------------------------------------------------------------
# PostgreSQL


class PgCluster:
    """A throwaway PostgreSQL 15 cluster on a free port, with TLS and the test roles.

    Roles (passwords are random per cluster, see .passwords):
      postgres   the bootstrap superuser (trust over the Unix socket only; used by the harness)
      rsadmin    a superuser with a SCRAM secret
      scramuser  SCRAM secret, owner of database rsdb (the default test user)
      md5user    MD5 secret (password_encryption=md5 while setting it), hba method md5
      pwuser     SCRAM secret, hba method password (cleartext exchange over TLS)
    TCP access is hostssl only when ssl is on (host when off); the Unix socket is trust.
    """

    ROLES = ("rsadmin", "scramuser", "md5user", "pwuser")

    def __init__(self, base_dir, *, cert=None, ssl=True, settings=None, max_connections=200,
                 name="pg"):
        self.base = os.path.join(base_dir, name)
        os.makedirs(self.base)
        give_to_postgres(self.base, 0o755)
        self.data = os.path.join(self.base, "data")
        self.sockdir = self.base
        self.logfile = os.path.join(self.base, "postgres.log")
        self.ssl = ssl
        self.cert = cert  # (crt, key) owned by postgres, or None
        self.settings = dict(settings or {})
        self.max_connections = max_connections
        self.port = None
        self.host = "127.0.0.1"
        self.passwords = {r: secrets.token_hex(12) for r in self.ROLES}
        self.started = False
        self._reaper = None

    # -- lifecycle

    def init(self):
        run(as_postgres([pg_bin("initdb"), "-D", self.data, "-U", "postgres", "-E", "UTF8",
                         "--locale=C.UTF-8", "-N", "-A", "trust"]), cwd="/")
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.sockdir}'",
            "max_connections": str(self.max_connections),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "log_line_prefix": "'%m [%p] %q%u@%d '",
            "log_min_messages": "warning",
            "password_encryption": "'scram-sha-256'",
            "ssl": "on" if self.ssl else "off",
        }
        if self.cert:
            conf["ssl_cert_file"] = f"'{self.cert[0]}'"
            conf["ssl_key_file"] = f"'{self.cert[1]}'"
        conf.update(self.settings)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("\n# rsproxy test harness\n")
            for k, v in conf.items():
                f.write(f"{k} = {v}\n")
        self.write_hba()

    def write_hba(self):
        kind = "hostssl" if self.ssl else "host"
        lines = [
            "local all all trust",
            f"{kind} all md5user 127.0.0.1/32 md5",
            f"{kind} all pwuser 127.0.0.1/32 password",
            f"{kind} all all 127.0.0.1/32 scram-sha-256",
        ]
        path = os.path.join(self.data, "pg_hba.conf")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        give_to_postgres(path, 0o600)

    def start(self, port=None):
        """Starts the cluster (initialising it first if needed) on port, or on a free port."""
        if not os.path.exists(os.path.join(self.data, "PG_VERSION")):
            self.init()
        # The port is free now but may be taken before postgres binds it (parallel ctest
        # processes pick ports too): retry with a new one, unless the caller chose it.
        for attempt in range(1 if port else 5):
            self.port = port or free_port()
            p = subprocess.run(
                as_postgres([pg_bin("pg_ctl"), "-D", self.data, "-l", self.logfile, "-w",
                             "-t", "60", "-o", f"-p {self.port}", "start"]),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd="/")
            if p.returncode == 0:
                self.started = True
                self._reaper = run_when_gone(as_postgres([pg_bin("pg_ctl"), "-D", self.data,
                                                          "-m", "immediate", "stop"]))
                break
            log = self.log_text()
            if "could not bind" not in log and "Address already in use" not in log:
                raise HarnessError(f"pg_ctl start failed:\n{p.stdout}\n{log[-4000:]}")
        else:
            raise HarnessError("could not find a free port for PostgreSQL")
        return self

    def setup_roles(self):
        from psycopg import sql
        with self.admin() as c:
            c.execute("SET password_encryption = 'md5'")
            c.execute(sql.SQL("CREATE ROLE md5user LOGIN PASSWORD {}").format(
                sql.Literal(self.passwords["md5user"])))
            c.execute("RESET password_encryption")
            for role, extra in (("rsadmin", "SUPERUSER"), ("scramuser", ""), ("pwuser", "")):
                c.execute(sql.SQL("CREATE ROLE {} LOGIN " + extra + " PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(self.passwords[role])))
            c.execute("CREATE DATABASE rsdb OWNER scramuser")
        with self.admin(dbname="rsdb") as c:
            c.execute("GRANT CREATE, USAGE ON SCHEMA public TO md5user, pwuser")
        return self

    def stop(self, mode="immediate"):
        if not self.started:
            return
        subprocess.run(as_postgres([pg_bin("pg_ctl"), "-D", self.data, "-m", mode, "-w",
                                    "stop"]),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/")
        self.started = False
        if self._reaper is not None:
            self._reaper.terminate()
            self._reaper.wait()
            self._reaper = None

    def reload(self):
        self.sql("SELECT pg_reload_conf()")

    def alter_system(self, **settings):
        """ALTER SYSTEM SET for each setting, then reload (SSL settings reload in PG >= 10)."""
        from psycopg import sql
        with self.admin() as c:
            for k, v in settings.items():
                c.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(k),
                                                                    sql.Literal(str(v))))
            c.execute("SELECT pg_reload_conf()")
        # pg_reload_conf only signals the postmaster; give it a moment to re-read.
        time.sleep(0.3)

    def log_text(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    # -- SQL from the harness (Unix socket, trust, no proxy involved)

    def admin(self, dbname="postgres"):
        import psycopg
        return psycopg.connect(host=self.sockdir, port=self.port, user="postgres",
                               dbname=dbname, autocommit=True, connect_timeout=10)

    def sql(self, query, params=None, dbname="postgres"):
        with self.admin(dbname) as c:
            cur = c.execute(query, params)
            return cur.fetchall() if cur.description else None

    def sql_value(self, query, params=None, dbname="postgres"):
        rows = self.sql(query, params, dbname)
        return rows[0][0] if rows else None

    def backends(self, user=None, dbname=None):
        """Client backends (not the harness's own), optionally filtered."""
        q = ("SELECT pid, usename, datname, state, query FROM pg_stat_activity "
             "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")
        rows = self.sql(q)
        return [r for r in rows if (user is None or r[1] == user)
                and (dbname is None or r[2] == dbname)]

    def direct_dsn(self, user="scramuser", dbname="rsdb", sslmode="verify-full",
                   sslrootcert=None, host="localhost", **kw):
        """A libpq conninfo that reaches this cluster without the proxy."""
        parts = {"host": host, "port": self.port, "user": user, "dbname": dbname,
                 "password": self.passwords.get(user, ""), "sslmode": sslmode,
                 "connect_timeout": 10}
        if sslrootcert:
            parts["sslrootcert"] = sslrootcert
        parts.update(kw)
        return conninfo(parts)


def conninfo(parts):
    def q(v):
        v = str(v)
        if v == "" or re.search(r"[\s'\\]", v):
            return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
        return v
    return " ".join(f"{k}={q(v)}" for k, v in parts.items() if v is not None)


# --------------------------------------------------------------------------------------------
# rsproxy


def default_proxy_config(pg, ca_file, listen_port):
    """The full INI a test starts from, as {section: {key: value}} (insertion-ordered)."""
    return {
        "proxy": {
            "listen_addr": "127.0.0.1",
            "listen_port": str(listen_port),
            "unix_socket_dir": "",
            "client_auth": "trust",
            "max_client_conn": "100",
            "admin_addr": "127.0.0.1",
            "admin_port": "0",
            "log_level": "debug",
            "log_format": "text",
        },
        "upstream": {
            "auth": "password",
            "host": "localhost",
            "port": str(pg.port),
            "sslmode": "verify-full",
            "sslrootcert": ca_file,
            "user": "",
            "password": pg.passwords["scramuser"],
            "connect_timeout": "10",
        },
        "s3": {
            # Pass-through tests against PostgreSQL: COPY ... STDIN/STDOUT is relayed as is.
            "copy_stdin": "false",
        },
    }


def write_ini(path, config):
    with open(path, "w") as f:
        for section, keys in config.items():
            f.write(f"[{section}]\n")
            for k, v in keys.items():
                f.write(f"{k} = {v}\n")
            f.write("\n")
    os.chmod(path, 0o600)  # it holds a password


class RsProxy:
    """One rsproxy process with its own INI file, ports and log.

    config: {section: {key: value}}; values are written as given. secrets: strings that must
    never appear in the log (passwords); the upstream password is added automatically.
    """

    def __init__(self, binary, workdir, config, *, env=None, name="rsproxy", secrets_=()):
        if not binary or not os.access(binary, os.X_OK):
            raise HarnessError(
                f"rsproxy binary {binary!r} is not executable: set RSPROXY_BIN (ctest does)")
        self.binary = os.path.abspath(binary)
        self.dir = workdir
        self.config = config
        self.env = dict(os.environ)
        if os.environ.get("RSPROXY_SANITIZED") == "1":
            # ASan keeps freed memory in a 256 MB quarantine by default, which alone would
            # break every RSS bound; a small one keeps the bounds meaningful.
            opts = self.env.get("ASAN_OPTIONS", "")
            self.env["ASAN_OPTIONS"] = (opts + ":" if opts else "") + "quarantine_size_mb=16"
        self.env.update(env or {})
        self.name = name
        self.ini = os.path.join(workdir, f"{name}.ini")
        self.logfile = os.path.join(workdir, f"{name}.log")
        self.proc = None
        self.exit_codes = []
        self.secrets = set(s for s in secrets_ if s)
        write_ini(self.ini, config)

    # -- addresses

    @property
    def port(self):
        return int(self.config["proxy"]["listen_port"])

    @property
    def host(self):
        return self.config["proxy"]["listen_addr"].split(",")[0].strip()

    def dsn(self, user="scramuser", dbname="rsdb", **kw):
        """libpq conninfo for a client of the proxy (plaintext to the proxy, as designed)."""
        parts = {"host": self.host, "port": self.port, "user": user, "dbname": dbname,
                 "sslmode": "disable", "connect_timeout": 10,
                 "application_name": "rsproxy-it"}
        parts.update(kw)
        return conninfo(parts)

    def url(self, user="scramuser", dbname="rsdb"):
        return f"postgresql://{user}@{self.host}:{self.port}/{dbname}?sslmode=disable"

    # -- process control

    def command(self):
        argv = [self.binary, "-c", self.ini]
        if os.environ.get("RSPROXY_VALGRIND"):
            argv = ["valgrind", "--quiet", "--error-exitcode=97", "--leak-check=full",
                    "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite",
                    "--num-callers=30"] + argv
        return argv

    def start(self, wait=True):
        for section in ("upstream",):
            pw = self.config.get(section, {}).get("password")
            if pw:
                self.secrets.add(pw)
        write_ini(self.ini, self.config)
        log = open(self.logfile, "ab")
        log.write(f"=== start {' '.join(self.command())}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=self.env, cwd=self.dir,
                                     preexec_fn=_die_with_parent)
        log.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=None):
        timeout = timeout or 15 * slow_factor()

        def accepting():
            if self.proc.poll() is not None:
                raise HarnessError(
                    f"rsproxy exited with {self.proc.returncode} during startup:\n"
                    f"{self.log_tail()}")
            with socket.create_connection((self.host, self.port), timeout=1):
                return True
        try:
            wait_until(accepting, timeout, what=f"rsproxy to accept on port {self.port}")
        except TimeoutError as exc:
            if self.proc.poll() is not None:
                raise HarnessError(f"rsproxy exited with {self.proc.returncode} during "
                                   f"startup:\n{self.log_tail()}") from None
            raise HarnessError(f"{exc}\n{self.log_tail()}") from None

    def start_expect_failure(self, timeout=None):
        """Starts rsproxy where it must refuse to run: returns (exit status, log text).
        Raises AssertionError if it is still running after timeout."""
        self.start(wait=False)
        try:
            rc = self.proc.wait(timeout or 15 * slow_factor())
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"rsproxy kept running:\n{self.log_tail()}")
        self.proc = None
        if rc < 0:
            self.exit_codes.append(rc)  # a crash is a problem even where failure is expected
        return rc, self.log_text()

    def run_check(self, timeout=None):
        """rsproxy --check -c <ini>: returns the CompletedProcess (stdout and stderr merged)."""
        write_ini(self.ini, self.config)
        argv = self.command()
        argv.insert(argv.index(self.binary) + 1, "--check")
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env=self.env, cwd=self.dir, timeout=timeout or 60 * slow_factor())
        with open(self.logfile, "a") as f:
            f.write(f"=== {' '.join(argv)} -> {p.returncode}\n{p.stdout}")
        if p.returncode < 0:
            self.exit_codes.append(p.returncode)
        return p

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=None):
        """SIGTERM, then wait; returns the exit status (negative: killed by that signal).
        A process still running after timeout is killed and reported as 'hung'."""
        if self.proc is None:
            return None
        timeout = timeout or 30 * slow_factor()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.exit_codes.append("hung")
                self.proc = None
                return "hung"
        rc = self.proc.returncode
        self.exit_codes.append(rc)
        self.proc = None
        return rc

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self):
        rc = self.stop()
        self.start()
        return rc

    def reload(self, config=None):
        """Rewrites the INI (when given a new config) and sends SIGHUP."""
        if config is not None:
            self.config = config
        write_ini(self.ini, self.config)
        self.proc.send_signal(signal.SIGHUP)

    # -- observation

    def log_text(self):
        try:
            with open(self.logfile, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n=60):
        """The last n lines, for failure messages: a secret the log should not hold (the
        failure being reported may be exactly that) is shown as <secret>."""
        tail = "\n".join(self.log_text().splitlines()[-n:])
        for s in self.secrets:
            if len(s) >= 8:
                tail = tail.replace(s, "<secret>")
        return tail

    def log_contains(self, pattern):
        return re.search(pattern, self.log_text(), re.MULTILINE) is not None

    def wait_until(self, predicate, timeout=10, what="condition"):
        """wait_until() with the timeout stretched under valgrind; fails early if rsproxy
        has exited meanwhile."""
        def check():
            if self.proc is not None and self.proc.poll() is not None:
                raise HarnessError(f"rsproxy exited with {self.proc.returncode} while waiting "
                                   f"for {what}:\n{self.log_tail()}")
            return predicate()
        try:
            return wait_until(check, timeout * slow_factor(), what=what)
        except TimeoutError:
            if self.proc is not None and self.proc.poll() is not None:
                raise HarnessError(f"rsproxy exited with {self.proc.returncode} while waiting "
                                   f"for {what}:\n{self.log_tail()}") from None
            raise

    def wait_for_log(self, pattern, timeout=10):
        return wait_until(lambda: self.log_contains(pattern), timeout * slow_factor(),
                          what=f"log line matching {pattern!r}")

    def status_kb(self, field):
        """A VmRSS/VmHWM/... value of the running process, in kB."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise HarnessError(f"{field} not in /proc/{self.proc.pid}/status")

    def rss_kb(self):
        return self.status_kb("VmRSS")

    def open_fds(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def connect(self, **kw):
        import psycopg
        autocommit = kw.pop("autocommit", True)
        return psycopg.connect(self.dsn(**kw), autocommit=autocommit)

    def sql_value(self, query, **kw):
        with self.connect(**kw) as c:
            row = c.execute(query).fetchone()
            return row[0] if row else None

    # -- the checks made when a test is done with the proxy

    def problems(self):
        """Everything wrong with how this proxy ran, as a list of strings (empty: fine)."""
        out = []
        for rc in self.exit_codes:
            if rc == "hung":
                out.append("did not exit within the timeout after SIGTERM")
            elif rc == 97 and os.environ.get("RSPROXY_VALGRIND"):
                out.append("valgrind reported errors")
            elif rc is not None and rc < 0:
                out.append(f"killed by signal {-rc} ({signal.Signals(-rc).name})")
            elif rc != 0:
                out.append(f"exit status {rc}")
        log = self.log_text()
        for m in SANITIZER_MARKERS:
            if m in log:
                out.append(f"log contains {m!r}")
        for s in self.secrets:
            if len(s) >= 8 and s in log:
                out.append("a secret (password) appears in the log")
        return out

    def stop_and_check(self):
        self.stop()
        problems = self.problems()
        if problems:
            raise AssertionError(f"rsproxy {self.name}: " + "; ".join(problems) +
                                 f"\n--- log tail ({self.logfile}) ---\n{self.log_tail(80)}")


def remove_tree(path):
    if os.environ.get("RSPROXY_KEEP_TMP"):
        return
    shutil.rmtree(path, ignore_errors=True)


def scram_keys(password, salt, iterations):
    """RFC 5802 ClientKey, StoredKey and ServerKey. Test passwords are ASCII, for which SASLprep
    is the identity."""
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    return client_key, hashlib.sha256(client_key).digest(), server_key


def scram_verifier(password, salt=None, iterations=4096):
    """PostgreSQL's stored SCRAM-SHA-256 secret, which CREATE/ALTER ROLE ... PASSWORD and an
    auth_file accept ready-made; a random 16-byte salt unless one is given."""
    salt = salt or os.urandom(16)
    _, stored, server = scram_keys(password, salt, iterations)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored)}:{b64(server)}"
