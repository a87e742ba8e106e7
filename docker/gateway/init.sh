#!/bin/sh
# compose.yaml's one-shot init: a CA, a server certificate for the compose service name
# "postgres", and random passwords, in the shared volume (kept across restarts).
# Owners: the postgres image runs as uid 999, the rsproxy image as 65532; rsproxy refuses a
# password_file that group or others can read, so each side gets its own 0600 copy.
# GATEWAY_DIR (default /gateway) lets CI run this natively (ctest docker.build).
set -eu
dir=${GATEWAY_DIR:-/gateway}
cd "$dir"
if [ -f tls/server.crt ]; then
    echo "init: $dir already initialised"
    exit 0
fi
mkdir -p tls
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout tls/ca.key -out tls/ca.pem -days 365 -subj "/CN=rsproxy compose gateway CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout tls/server.key -out tls/server.csr -subj "/CN=postgres" 2>/dev/null
printf '%s\n' "basicConstraints=CA:FALSE" "extendedKeyUsage=serverAuth" \
    "subjectAltName=DNS:postgres,DNS:localhost,IP:127.0.0.1" >tls/server.ext
openssl x509 -req -in tls/server.csr -CA tls/ca.pem -CAkey tls/ca.key -set_serial 1 \
    -days 365 -out tls/server.crt -extfile tls/server.ext 2>/dev/null
# The CA key is not needed again: nothing else can be signed with it.
rm -f tls/server.csr tls/server.ext tls/ca.key
openssl rand -hex 24 >superuser-password
openssl rand -hex 24 >demo-password.postgres
cp demo-password.postgres demo-password.rsproxy
chown 999:999 tls/server.key tls/server.crt superuser-password demo-password.postgres
chown 65532:65532 demo-password.rsproxy
chmod 600 tls/server.key superuser-password demo-password.postgres demo-password.rsproxy
chmod 644 tls/server.crt tls/ca.pem
chmod 755 . tls
echo "init: CA, certificates and passwords written to $dir"
