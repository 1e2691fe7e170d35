"""`python -m cryptolake.services.sandbox serve ...` = `cryptolake sandbox serve ...` (the local stack runs this)."""

import sys

from cryptolake.cli import main

main(["sandbox", *sys.argv[1:]])
