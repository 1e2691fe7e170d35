"""`python -m cryptolake.services.sandbox serve ...` = `cryptolake sandbox serve ...` (the local stack runs this)."""

import sys

from cryptolake.cli import main

sys.argv[1:1] = ["sandbox"]
main()
