#!/bin/sh
# compose.yaml's one-shot init, the container twin of what tests/local-gateway.sh generates:
# in the shared volume (kept across restarts; a second run changes nothing)
#   tls/          a CA and one server certificate for the compose names "redshift" (the
#                 Redshift stand-in, which rsproxy verifies with verify-full) and "postgres"
#                 (its TLS port, used by the AWS stand-in's admin connection), plus localhost;
#                 the CA key is deleted once the certificate is signed
#   world.json    the stand-ins' account: a principal with keys made here, the cluster
#                 examplecluster at redshift:5439, the COPY/UNLOAD role, the bucket rsproxy-demo
#   aws/          rsproxy's AWS profile rsproxy-gateway (credentials, region, endpoints)
#   superuser-password, aws-standin.pgpass   PostgreSQL's superuser (the AWS stand-in sets
#                 the passwords it mints through it)
#   demo-password.{postgres,rsproxy}         the cluster's admin user "demo" (Redshift's master
#                 user), for logging in with a password instead of IAM (see compose.yaml)
# Owners: the postgres image runs as uid 999, the rsproxy image as 65532, the stand-ins as
# root; secrets are 0600, one copy per reader. GATEWAY_DIR (default /gateway) lets CI run this
# natively (tests/integration/test_docker_configs.py).
set -eu
dir=${GATEWAY_DIR:-/gateway}
cd "$dir"
if [ -f tls/server.crt ]; then
    echo "init: $dir already initialised"
    exit 0
fi
umask 022
mkdir -p tls aws
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout tls/ca.key -out tls/ca.pem -days 365 -subj "/CN=rsproxy compose gateway CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout tls/server.key -out tls/server.csr -subj "/CN=redshift" 2>/dev/null
printf '%s\n' "basicConstraints=CA:FALSE" "extendedKeyUsage=serverAuth" \
    "subjectAltName=DNS:redshift,DNS:postgres,DNS:localhost,IP:127.0.0.1" >tls/server.ext
openssl x509 -req -in tls/server.csr -CA tls/ca.pem -CAkey tls/ca.key -set_serial 1 \
    -days 365 -out tls/server.crt -extfile tls/server.ext 2>/dev/null
# The CA key is not needed again: nothing else can be signed with it.
rm -f tls/server.csr tls/server.ext tls/ca.key

umask 077
openssl rand -hex 24 >superuser-password
printf 'postgres:5432:*:postgres:%s\n' "$(cat superuser-password)" >aws-standin.pgpass
openssl rand -hex 24 >demo-password.postgres
cp demo-password.postgres demo-password.rsproxy

akid=AKIA$(openssl rand -hex 8 | tr a-f A-F)
secret=$(openssl rand -base64 30)
account=123456789012
region=us-east-1
role=arn:aws:iam::$account:role/RedshiftCopyUnload
rs=arn:aws:redshift:$region:$account
cat >world.json <<EOF
{
  "region": "$region",
  "account": "$account",
  "principals": {
    "$akid": {
      "secret": "$secret",
      "arn": "arn:aws:iam::$account:user/rsproxy-gateway",
      "allow": [
        {"action": "redshift:GetClusterCredentials",
         "resource": ["$rs:dbuser:examplecluster/*", "$rs:dbname:examplecluster/*"]},
        {"action": "redshift:DescribeClusters", "resource": "$rs:cluster:examplecluster"},
        "s3:*"
      ],
      "s3": ["s3://rsproxy-demo/*"]
    }
  },
  "roles": {
    "$role": {"trust": ["redshift.amazonaws.com"], "allow": ["s3:*"], "s3": ["s3://rsproxy-demo/*"]}
  },
  "clusters": {
    "examplecluster": {
      "endpoint": {"Address": "redshift", "Port": 5439},
      "dbname": "dev",
      "master_username": "demo",
      "iam_roles": ["$role"],
      "default_iam_role": "$role",
      "pg_admin_dsn": "host=postgres port=5432 user=postgres dbname=postgres sslmode=verify-full sslrootcert=/gateway/tls/ca.pem passfile=/gateway/aws-standin.pgpass",
      "password_encryption": "md5",
      "db_users": ["alice"]
    }
  },
  "buckets": ["rsproxy-demo"]
}
EOF
cat >aws/credentials <<EOF
[rsproxy-gateway]
aws_access_key_id = $akid
aws_secret_access_key = $secret
EOF
cat >aws/config <<EOF
[profile rsproxy-gateway]
region = $region
services = rsproxy-gateway

[services rsproxy-gateway]
redshift =
  endpoint_url = http://aws:4566
sts =
  endpoint_url = http://aws:4566
s3 =
  endpoint_url = http://s3:4569
EOF

chown 999:999 tls/server.key tls/server.crt superuser-password demo-password.postgres
chown -R 65532:65532 demo-password.rsproxy aws
chmod 600 tls/server.key superuser-password aws-standin.pgpass demo-password.postgres \
    demo-password.rsproxy world.json aws/credentials aws/config
chmod 644 tls/server.crt tls/ca.pem
chmod 700 aws
chmod 755 . tls
echo "init: CA, certificates, the stand-ins' world, rsproxy's AWS profile and passwords written to $dir"
