#!/usr/bin/python3
"""Starts the Redshift SQL stand-in (see tests/standins/README.md):

  redshift_standin.py --port 0 --state WORLD.json --upstream "host=127.0.0.1 port=N sslmode=require"
                      [--tls-cert C --tls-key K] [--aws-control URL] [--s3-endpoint URL] ...

Prints `LISTENING <port>` once it accepts connections and exits cleanly on SIGTERM. Run it with
Debian's /usr/bin/python3, which sees python3-boto3.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from rsstandin.server import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
