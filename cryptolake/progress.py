"""Progress bars for long work, shown only where a person watches: on a terminal with text logs.

Anywhere else (containers, CI, `--log-json`) the output stays JSON lines, which `kubectl logs` and log
collectors read; a bar would only add carriage-return noise there.
"""

from __future__ import annotations

import sys

from tqdm import tqdm

from cryptolake import logs


def bar(total: int | None, what: str, unit: str) -> tqdm:
    """A bar over `total` steps named `what`; disabled (a no-op) unless stderr is a terminal with text logs."""
    shown = sys.stderr.isatty() and logs.console()
    return tqdm(total=total, desc=what, unit=unit, file=sys.stderr, disable=not shown, leave=False,
                dynamic_ncols=True)
