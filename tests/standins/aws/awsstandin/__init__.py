"""The AWS stand-in: Redshift, Redshift Serverless, STS and the credential endpoints on one port.

Every signed request is verified with botocore's SigV4 signer (not with rsproxy's code), parameters
are validated as AWS documents them, and errors use AWS's codes, bodies and HTTP statuses. See
tests/standins/README.md for the world file, the control API and the command line.
"""
