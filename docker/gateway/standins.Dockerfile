# syntax=docker/dockerfile:1
# The stand-ins of docker/compose.yaml (tests/standins: AWS, S3, Redshift SQL) and the
# gateway's one-shot helpers (init.sh, s3.py), on Debian 12 with the same packages
# tests/install-deps.sh installs for them: Debian's Python with boto3/botocore and psycopg, and
# Node.js with the S3 stand-in's npm packages pinned by its package-lock.json.
#
#   docker build -f docker/gateway/standins.Dockerfile -t rsproxy-gateway-standins .
FROM debian:bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-boto3 python3-botocore \
        python3-psycopg nodejs npm openssl ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY tests/standins/s3/package.json tests/standins/s3/package-lock.json tests/standins/s3/
RUN cd tests/standins/s3 && npm ci --no-audit --no-fund --loglevel=error
COPY tests/standins tests/standins
COPY docker/gateway docker/gateway
