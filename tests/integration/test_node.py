"""node-postgres (npm pg, pinned in node/package-lock.json) through rsproxy: node/client.js
runs one scenario per test. tests/install-deps.sh runs `npm ci` there; a missing
node_modules is a failure."""

import os
import shutil
import subprocess

import pytest

NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node")


@pytest.fixture(scope="module")
def node():
    path = shutil.which("node")
    if not path:
        pytest.fail("node not found: run tests/install-deps.sh (nodejs)", pytrace=False)
    for mod in ("pg", "pg-copy-streams"):
        if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", mod)):
            pytest.fail(f"npm package {mod} missing: run tests/install-deps.sh (npm ci in "
                        f"{NODE_DIR})", pytrace=False)
    return path


@pytest.mark.parametrize("scenario", ["queries", "transactions", "prepared", "pipeline",
                                      "cancel", "copy", "unicode", "notifications"])
def test_node_pg(proxy, node, scenario):
    p = subprocess.run([node, os.path.join(NODE_DIR, "client.js"), proxy.host, str(proxy.port),
                        "scramuser", "rsdb", scenario],
                       capture_output=True, text=True, timeout=120, cwd=NODE_DIR)
    assert p.returncode == 0 and f"PASS {scenario}" in p.stdout, \
        f"exit {p.returncode}\n{p.stdout}\n{p.stderr}"
