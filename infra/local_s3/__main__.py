"""``python -m local_s3 DATA_ROOT [--host H] [--port N]``: localbucket, see ``local_s3``."""

from local_s3 import main

main()
