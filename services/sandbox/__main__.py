"""`python -m cryptolake.services.sandbox serve ...`: how the local stack starts the sandbox as its own process."""

from cryptolake.services.sandbox.cli import sandbox

sandbox(prog_name="cryptolake sandbox")
