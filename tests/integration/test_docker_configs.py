"""The container files under docker/ that cannot run here (no Docker engine) are still
checked: every rsproxy configuration they ship passes rsproxy's own validation, the compose
gateway's init script makes a certificate that verifies for the name rsproxy dials, and the
files compose.yaml mounts exist. (docker.build runs the image's build steps.)"""

import os
import re
import subprocess

import pytest
import yaml

from pgharness import free_port

DOCKER = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "docker")


def check_env(tmp):
    """No AWS credentials, no instance metadata (never reach for a non-loopback address)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")
           and not k.startswith("RSPROXY_")}
    env.update(HOME=tmp, AWS_EC2_METADATA_DISABLED="true",
               AWS_CONFIG_FILE=os.path.join(tmp, "none"),
               AWS_SHARED_CREDENTIALS_FILE=os.path.join(tmp, "none"))
    return env


def config_errors(rsproxy_bin, ini_path, env):
    p = subprocess.run([rsproxy_bin, "--check", "-c", ini_path], capture_output=True,
                       text=True, timeout=60, env=env)
    out = p.stdout + p.stderr
    # The config contract: every error is reported as "file:line: section.key: message" (or
    # "env RSPROXY_...: ..."). A valid file gets past that to the credential/upstream steps.
    errors = [l for l in out.splitlines()
              if l.startswith(ini_path + ":") or l.startswith("env RSPROXY_")]
    return errors, out


def k8s_configs():
    out = []
    for name in ("sidecar.yaml", "deployment.yaml"):
        with open(os.path.join(DOCKER, "k8s", name)) as f:
            for doc in yaml.safe_load_all(f):
                if doc["kind"] == "ConfigMap":
                    out.append((name, doc["data"]["rsproxy.ini"]))
    return out


@pytest.mark.parametrize("name,text", k8s_configs(), ids=[n for n, _ in k8s_configs()])
def test_k8s_configs_are_valid(rsproxy_bin, workdir, name, text):
    d = os.path.join(workdir, "k8s-" + name)
    os.makedirs(d, exist_ok=True)
    users = os.path.join(d, "users.txt")
    with open(users, "w") as f:
        f.write('"reporting" "plain-text-for-the-check"\n')
    os.chmod(users, 0o600)
    ini = os.path.join(d, "rsproxy.ini")
    with open(ini, "w") as f:
        f.write(text.replace("/etc/rsproxy-auth/users.txt", users))
    errors, out = config_errors(rsproxy_bin, ini, check_env(d))
    assert errors == [], out


def test_image_default_config_is_valid_once_a_cluster_is_named(rsproxy_bin, workdir):
    ini = os.path.join(DOCKER, "rsproxy.example.ini")
    env = check_env(workdir)
    errors, out = config_errors(rsproxy_bin, ini, env)
    # As shipped it names no cluster, and says so.
    assert any("cluster_identifier" in e for e in errors), out
    env.update(RSPROXY_IAM_CLUSTER_IDENTIFIER="examplecluster", RSPROXY_IAM_REGION="us-east-1")
    errors, out = config_errors(rsproxy_bin, ini, env)
    assert errors == [], out


def test_compose_gateway(rsproxy_bin, workdir):
    gw = os.path.join(workdir, "compose-gateway")
    os.makedirs(gw)
    subprocess.run(["sh", os.path.join(DOCKER, "gateway", "init.sh")], check=True,
                   env=dict(os.environ, GATEWAY_DIR=gw), capture_output=True, timeout=60)
    tls = os.path.join(gw, "tls")
    # The certificate verifies for "postgres", the name rsproxy dials inside compose.
    p = subprocess.run(["openssl", "verify", "-CAfile", os.path.join(tls, "ca.pem"),
                        "-verify_hostname", "postgres", os.path.join(tls, "server.crt")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert not os.path.exists(os.path.join(tls, "ca.key"))
    for f, uid in (("demo-password.rsproxy", 65532), ("demo-password.postgres", 999),
                   ("superuser-password", 999)):
        st = os.stat(os.path.join(gw, f))
        assert st.st_mode & 0o777 == 0o600 and st.st_uid == uid, f
    # A second run keeps what exists.
    p = subprocess.run(["sh", os.path.join(DOCKER, "gateway", "init.sh")],
                       env=dict(os.environ, GATEWAY_DIR=gw), capture_output=True, text=True)
    assert p.returncode == 0 and "already initialised" in p.stdout

    # rsproxy accepts the compose config (paths moved here; host and port pointed at a closed
    # local port, so the upstream step fails fast without any lookup).
    with open(os.path.join(DOCKER, "gateway", "rsproxy.ini")) as f:
        text = f.read().replace("/gateway/", gw + "/")
    text = re.sub(r"(?m)^host = postgres$", "host = localhost", text)
    text = re.sub(r"(?m)^port = 5432$", f"port = {free_port()}", text)
    os.chown(os.path.join(gw, "demo-password.rsproxy"), os.getuid(), os.getgid())
    ini = os.path.join(gw, "rsproxy.ini")
    with open(ini, "w") as f:
        f.write(text)
    errors, out = config_errors(rsproxy_bin, ini, check_env(gw))
    assert errors == [], out

    with open(os.path.join(DOCKER, "compose.yaml")) as f:
        compose = yaml.safe_load(f)
    for svc in compose["services"].values():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("./"):
                assert os.path.exists(os.path.join(DOCKER, src)), src
        build = svc.get("build")
        if build:
            assert os.path.exists(os.path.join(DOCKER, build["context"], build["dockerfile"]))


def test_dockerfile_uses_the_package_lists():
    with open(os.path.join(DOCKER, "Dockerfile")) as f:
        text = f.read()
    assert "docker/build.sh" in text
    assert "build-packages.txt" in text and "runtime-packages.txt" in text
    assert re.search(r"(?m)^USER \d+", text)
