#!/usr/bin/python3
"""The local gateway's S3 tool (tests/local-gateway.sh and docker/compose.yaml): boto3 against
the S3 stand-in, with the credentials of the standard AWS environment (the gateway's profile).

    s3.py seed [BUCKET]                 the demo data: data/cities.csv, and a lifecycle rule
                                        that expires the tempdir (tmp/) after a day
    s3.py ls [s3://BUCKET/PREFIX]       list objects (default: the whole demo bucket)
    s3.py cat s3://BUCKET/KEY           print an object

The endpoint is AWS_ENDPOINT_URL_S3 (Debian 12's botocore does not read that variable itself).
"""

import os
import sys

DEMO_BUCKET = "rsproxy-demo"

# CSV with a header line, a quoted field and a non-ASCII name: COPY ... CSV IGNOREHEADER 1.
CITIES_CSV = ("id,city,country,population\n"
              "1,Tokyo,JP,37194000\n"
              "2,Delhi,IN,32941000\n"
              "3,Shanghai,CN,29210000\n"
              "4,São Paulo,BR,22620000\n"
              "5,\"Mexico City\",MX,22281000\n")

# rsproxy stages COPY FROM STDIN / TO STDOUT data under the tempdir and deletes it afterwards;
# a rule like this removes what a crash leaves behind, and rsproxy's startup check looks for it.
TEMPDIR_RULE = {"ID": "expire-rsproxy-tempdir", "Filter": {"Prefix": "tmp/"},
                "Status": "Enabled", "Expiration": {"Days": 1},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}


def client():
    import boto3
    from botocore.config import Config
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3")
    if not endpoint:
        sys.exit("s3.py: set AWS_ENDPOINT_URL_S3 (the S3 stand-in's URL)")
    return boto3.client("s3", endpoint_url=endpoint,
                        config=Config(s3={"addressing_style": "path"}))


def split(url):
    if not url.startswith("s3://"):
        sys.exit(f"s3.py: not an s3:// URL: {url}")
    bucket, _, key = url[5:].partition("/")
    return bucket, key


def main(argv):
    cmd = argv[0] if argv else "ls"
    if cmd == "seed" and len(argv) <= 2:
        bucket = argv[1] if len(argv) == 2 else DEMO_BUCKET
        s3 = client()
        s3.put_object(Bucket=bucket, Key="data/cities.csv", Body=CITIES_CSV.encode(),
                      ContentType="text/csv")
        s3.put_bucket_lifecycle_configuration(Bucket=bucket,
                                              LifecycleConfiguration={"Rules": [TEMPDIR_RULE]})
    elif cmd == "ls" and len(argv) <= 2:
        bucket, prefix = split(argv[1] if len(argv) == 2 else f"s3://{DEMO_BUCKET}/")
        for page in client().get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                      Prefix=prefix):
            for o in page.get("Contents", []):
                print(f"{o['LastModified']:%Y-%m-%d %H:%M:%S} {o['Size']:>10} "
                      f"s3://{bucket}/{o['Key']}")
    elif cmd == "cat" and len(argv) == 2:
        bucket, key = split(argv[1])
        body = client().get_object(Bucket=bucket, Key=key)["Body"]
        for chunk in iter(lambda: body.read(65536), b""):
            sys.stdout.buffer.write(chunk)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
