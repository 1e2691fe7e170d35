"""Errors a user can act on: each says what failed, why, and what to do next."""


class CryptolakeError(Exception):
    """Base of every error the CLI reports as one clear line instead of a traceback."""

    exit_code = 1

    def __init__(self, what: str, hint: str | None = None):
        self.what = what
        self.hint = hint
        super().__init__(what if not hint else f"{what}. {hint}")


class SettingsError(CryptolakeError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(
            "invalid configuration: " + "; ".join(problems),
            "Fix the environment variables or flags named above (see .env.example)",
        )


class LakeError(CryptolakeError):
    """A lake path, file or ledger record that cannot be read or written as asked."""


class LocalStackError(CryptolakeError):
    """A part of the embedded local stack that cannot be found, started or reached."""
