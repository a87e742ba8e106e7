"""The [s3] tempdir lifecycle check through a real rsproxy (px_proxy.c, s3/s3_lifecycle.c):
with tempdir set, rsproxy builds its S3 client at startup and asks S3 once for the tempdir
bucket's lifecycle configuration (GetBucketLifecycleConfiguration, signed and verified by the
S3 stand-in), then logs the verdict: INFO naming the rule when one covers the tempdir, WARN
with spark-redshift's text when none does, WARN with S3's error when the configuration cannot
be read. The check never blocks or fails startup, runs again after a reload that changes
tempdir, not after one that does not, and not at all with check_lifecycle = false.

The stand-ins are fixtures_copy's stack (AWS, S3, Redshift SQL); rsproxy reaches the S3
stand-in through AWS_ENDPOINT_URL_S3, with the proxy principal's keys from its environment.
"""

import time

import pytest

from fixtures_copy import BUCKET, EU_BUCKET, OTHER_BUCKET, TEMPDIR, connect

NO_RULE = (r"warn tempdir lifecycle check: The S3 bucket {bucket} does not have an object "
           r"lifecycle configuration to ensure cleanup of temporary files\. Consider configuring "
           r"`tempdir` to point to a bucket with an object lifecycle policy that automatically "
           r"deletes files after an expiration period\. For more information, see "
           r"https://docs\.aws\.amazon\.com/AmazonS3/latest/dev/object-lifecycle-mgmt\.html")
CHECK_LINE = "tempdir lifecycle check:"
GET_LC = "GetBucketLifecycleConfiguration"


def no_rule(bucket):
    return NO_RULE.format(bucket=bucket)


def covered(bucket, rule_id, url):
    return (rf"info tempdir lifecycle check: The S3 bucket {bucket} has lifecycle rule "
            rf"'{rule_id}' covering {url}")


def rule(rule_id, prefix=None, status="Enabled", days=1):
    r = {"ID": rule_id, "Status": status, "Expiration": {"Days": days}}
    r["Filter"] = {"Prefix": prefix} if prefix is not None else {}
    return r


@pytest.fixture
def lc(cx):
    """cx plus helpers for lifecycle configurations; every bucket starts and ends without one
    (the S3 stand-in keeps them in memory for the whole module)."""
    s3c = cx.stack.s3c

    def clear():
        for b in (BUCKET, OTHER_BUCKET):
            s3c.delete_bucket_lifecycle(Bucket=b)
        cx.stack.s3c_eu.delete_bucket_lifecycle(Bucket=EU_BUCKET)

    def put(bucket, *rules):
        client = cx.stack.s3c_eu if bucket == EU_BUCKET else s3c
        client.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration={"Rules": list(rules)})

    def proxy(s3=None, **kw):
        settings = {"tempdir": TEMPDIR}
        settings.update(s3 or {})
        env = {"AWS_ENDPOINT_URL_S3": cx.stack.s3.endpoint}
        env.update(kw.pop("env", {}))
        return cx.proxy(s3=settings, env=env, **kw)

    def lc_calls():
        return cx.stack.s3.calls().get(GET_LC, 0)

    clear()
    cx.put_rules, cx.lc_proxy, cx.lc_calls = put, proxy, lc_calls
    yield cx
    clear()
    cx.stack.s3.reset()  # no fault armed here may reach the next test


def check_lines(p):
    return [line for line in p.log_text().splitlines() if CHECK_LINE in line]


def still_serves(p):
    with connect(p) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)


def test_no_lifecycle_configuration_warns(lc):
    before = lc.lc_calls()
    p = lc.lc_proxy()
    p.wait_for_log(no_rule(BUCKET), timeout=30)
    assert lc.lc_calls() == before + 1
    assert len(check_lines(p)) == 1, check_lines(p)
    still_serves(p)


def test_rule_covering_tempdir_is_logged_at_info(lc):
    lc.put_rules(BUCKET, rule("other", prefix="logs/"), rule("cleanup-tmp", prefix="tmp/"))
    p = lc.lc_proxy()
    p.wait_for_log(covered(BUCKET, "cleanup-tmp", "s3://rsproxy-test/tmp/"), timeout=30)
    assert not p.log_contains(r"warn tempdir lifecycle"), check_lines(p)
    still_serves(p)


def test_whole_bucket_rule_covers_and_tempdir_without_slash(lc):
    # A rule without a prefix covers every key; tempdir written without a trailing '/' and as
    # s3a:// is still the same place.
    lc.put_rules(BUCKET, rule("everything"))
    p = lc.lc_proxy(s3={"tempdir": f"s3a://{BUCKET}/tmp"})
    p.wait_for_log(covered(BUCKET, "everything", "s3://rsproxy-test/tmp"), timeout=30)


@pytest.mark.parametrize("rules", [
    [rule("logs-only", prefix="logs/")],
    [rule("tmp-but-off", prefix="tmp/", status="Disabled")],
    [rule("deeper", prefix="tmp/staging/")],
], ids=["other-prefix", "disabled", "narrower-prefix"])
def test_rules_that_do_not_cover_tempdir_warn(lc, rules):
    lc.put_rules(BUCKET, *rules)
    p = lc.lc_proxy()
    p.wait_for_log(no_rule(BUCKET), timeout=30)
    assert not p.log_contains(r"info tempdir lifecycle"), check_lines(p)


def test_tempdir_region_bucket(lc):
    # The client signs for tempdir_region: a bucket in eu-west-1 answers only to that scope.
    lc.put_rules(EU_BUCKET, rule("eu-tmp", prefix="tmp/"))
    p = lc.lc_proxy(s3={"tempdir": f"s3://{EU_BUCKET}/tmp/", "tempdir_region": "eu-west-1"})
    p.wait_for_log(covered(EU_BUCKET, "eu-tmp", f"s3://{EU_BUCKET}/tmp/"), timeout=30)


def test_s3_error_warns_and_startup_goes_on(lc):
    lc.stack.s3.fault(GET_LC, "error", count=1, code="AccessDenied", status=403,
                      message="Access Denied")
    p = lc.lc_proxy()
    p.wait_for_log(r"warn tempdir lifecycle check: An error occurred while trying to read the "
                   r"S3 bucket lifecycle configuration: .*Access Denied.*AccessDenied",
                   timeout=30)
    still_serves(p)
    assert p.stop() == 0


def test_check_lifecycle_false_asks_nothing(lc):
    before = lc.lc_calls()
    p = lc.lc_proxy(s3={"check_lifecycle": False})
    still_serves(p)
    time.sleep(1.0)  # the check would have been sent at startup, before the first client
    assert lc.lc_calls() == before
    assert check_lines(p) == []


def test_slow_s3_blocks_neither_startup_nor_shutdown(lc):
    lc.stack.s3.fault(GET_LC, "stall", count=1, seconds=30)
    p = lc.lc_proxy()
    t0 = time.monotonic()
    still_serves(p)
    p.wait_until(lambda: lc.lc_calls() >= 1, timeout=10, what="the lifecycle request")
    # The answer is still 30 s away: SIGTERM must not wait for it (the check is canceled, and
    # nothing is logged about it).
    assert p.stop() == 0
    assert time.monotonic() - t0 < 20, "rsproxy waited for the stalled S3 request"
    assert check_lines(p) == []


def test_reload_that_changes_tempdir_checks_again(lc):
    lc.put_rules(OTHER_BUCKET, rule("other-tmp", prefix="staging/"))
    p = lc.lc_proxy()
    p.wait_for_log(no_rule(BUCKET), timeout=30)
    calls = lc.lc_calls()

    # A reload that leaves tempdir alone does not ask again.
    p.config["proxy"]["log_level"] = "info"
    p.reload(p.config)
    p.wait_for_log(r"configuration reloaded", timeout=10)
    time.sleep(0.5)
    assert lc.lc_calls() == calls
    assert len(check_lines(p)) == 1

    # A new tempdir (another bucket): the check runs for it, and its verdict is logged.
    p.config["s3"]["tempdir"] = f"s3://{OTHER_BUCKET}/staging/"
    p.reload(p.config)
    p.wait_for_log(covered(OTHER_BUCKET, "other-tmp", f"s3://{OTHER_BUCKET}/staging/"),
                   timeout=30)
    assert lc.lc_calls() == calls + 1
    still_serves(p)

    # Turning check_lifecycle off and tempdir back: nothing asked.
    p.config["s3"]["check_lifecycle"] = "false"
    p.config["s3"]["tempdir"] = TEMPDIR
    p.reload(p.config)
    wait_reloads(p, 3)
    time.sleep(0.5)
    assert lc.lc_calls() == calls + 1
    assert p.stop() == 0


def wait_reloads(p, n, timeout=10):
    p.wait_until(lambda: p.log_text().count("configuration reloaded") >= n, timeout=timeout,
                 what=f"{n} reloads")


def test_password_mode_with_tempdir_still_checks(lc):
    """The check needs only rsproxy's own AWS keys, not IAM login: with upstream.auth =
    password it runs all the same (auth_iam is set up for the S3 client's sake)."""
    lc.put_rules(BUCKET, rule("tmp", prefix="tmp/"))
    p = lc.lc_proxy(start=False)
    p.config["upstream"].update({"auth": "password", "user": "postgres", "password": "unused"})
    lc.start(p)
    p.wait_for_log(covered(BUCKET, "tmp", "s3://rsproxy-test/tmp/"), timeout=30)
