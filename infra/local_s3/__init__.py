"""The embedded local S3 server: localbucket, its connections without Nagle's algorithm.

localbucket's handler (the standard library's ``BaseHTTPRequestHandler``) sends a response's
headers and its body in two writes. With Nagle's algorithm on, the body waits until the client
acknowledges the headers, and Linux delays that acknowledgement by 40 ms: every GET of an object
took 47 ms here, against 5 ms for a PUT. ``socketserver`` sets TCP_NODELAY on each connection
when the handler's ``disable_nagle_algorithm`` is true, and nothing else changes.
"""

from __future__ import annotations

import localbucket

__all__ = ["main"]


def main() -> None:
    """localbucket's own command line (``python -m local_s3 DATA_ROOT --host H --port N``)."""
    localbucket.S3Handler.disable_nagle_algorithm = True
    localbucket.main()
