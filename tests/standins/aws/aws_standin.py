#!/usr/bin/python3
"""Starts the AWS stand-in: aws_standin.py --state WORLD.json [--port 0] [--tls-cert C --tls-key K].

Prints `LISTENING <port>` on stdout once it accepts connections and exits cleanly on SIGTERM.
Run it with Debian's /usr/bin/python3, which sees python3-botocore and python3-psycopg. See
tests/standins/README.md for the world file and the control API.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from awsstandin.server import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
