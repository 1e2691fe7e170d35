"""`python -m cryptolake.services.sandbox serve ...` = `cryptolake sandbox serve ...` (how the local stack starts it)."""

import sys

from cryptolake.cli import main

sys.argv[1:1] = ["sandbox"]
main()
