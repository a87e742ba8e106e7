"""pgjdbc (Debian's libpostgresql-jdbc-java) through rsproxy: java/JdbcClient.java is
compiled with javac when this file runs and driven one scenario per test."""

import os
import shutil
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
JDBC_JAR = os.environ.get("RSPROXY_JDBC_JAR", "/usr/share/java/postgresql.jar")


@pytest.fixture(scope="module")
def jdbc_classes(workdir):
    for tool in ("javac", "java"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} not found: run tests/install-deps.sh (default-jdk-headless)",
                        pytrace=False)
    if not os.path.exists(JDBC_JAR):
        pytest.fail(f"{JDBC_JAR} missing: run tests/install-deps.sh (libpostgresql-jdbc-java)",
                    pytrace=False)
    out = os.path.join(workdir, "java-classes")
    os.makedirs(out, exist_ok=True)
    p = subprocess.run(["javac", "-encoding", "UTF-8", "-d", out, "-cp", JDBC_JAR,
                        os.path.join(HERE, "java", "JdbcClient.java")],
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr
    return out


def jdbc_url(proxy, **params):
    q = {"user": "scramuser", "sslmode": "disable", "prepareThreshold": "1",
         "ApplicationName": "rsproxy-jdbc", "connectTimeout": "10"}
    q.update(params)
    return (f"jdbc:postgresql://{proxy.host}:{proxy.port}/rsdb?" +
            "&".join(f"{k}={v}" for k, v in q.items()))


def run_scenario(classes, url, scenario):
    p = subprocess.run(["java", "-Dfile.encoding=UTF-8", "-cp", f"{classes}:{JDBC_JAR}",
                        "JdbcClient", url, scenario],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and f"PASS {scenario}" in p.stdout, \
        f"exit {p.returncode}\n{p.stdout}\n{p.stderr}"


@pytest.mark.parametrize("scenario", ["queries", "transactions", "prepared", "cancel", "copy",
                                      "unicode", "notifications"])
def test_jdbc(proxy, jdbc_classes, scenario):
    run_scenario(jdbc_classes, jdbc_url(proxy), scenario)


def test_jdbc_binary_transfer_and_simple_mode(proxy, jdbc_classes):
    # preferQueryMode=simple sends every statement as a simple Query with inlined parameters.
    run_scenario(jdbc_classes, jdbc_url(proxy, preferQueryMode="simple"), "queries")
    run_scenario(jdbc_classes, jdbc_url(proxy, preferQueryMode="extendedCacheEverything",
                                        binaryTransfer="true"), "prepared")
