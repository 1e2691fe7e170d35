"""`cryptolake sandbox serve`: the local CoinMarketCap-compatible API (heavy imports wait until it runs)."""

from __future__ import annotations

from pathlib import Path

import click

from cryptolake.errors import CryptolakeError
from cryptolake.services.sandbox import DEFAULT_API_KEY


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
def sandbox() -> None:
    """A local CoinMarketCap-compatible API over a deterministic synthetic market (see docs/sandbox.md)."""


@sandbox.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (keep it on loopback).")
@click.option("--port", type=int, default=18080, show_default=True, help="Port to listen on.")
@click.option("--seed", type=int, default=42, show_default=True, help="Seed of the synthetic market.")
@click.option("--coins", type=int, default=10_000, show_default=True,
              help="Coins ever listed, including those that appear or go inactive later.")
@click.option("--exchanges", type=int, default=800, show_default=True, help="Exchanges ever listed.")
@click.option("--categories", type=int, default=300, show_default=True, help="Coin categories ever created.")
@click.option("--clock", "clock_mode", type=click.Choice(["wall", "simulated"]), default="wall", show_default=True,
              help="Wall time, or a simulated clock controlled through POST /sandbox/clock.")
@click.option("--start", help="Simulated clock start, ISO-8601 or unix seconds (default: now).")
@click.option("--rate", type=float, default=1.0, show_default=True,
              help="Simulated seconds per wall second (0 freezes the clock, 3600 makes an hour pass each second).")
@click.option("--rate-limit", type=int, default=30, show_default=True,
              help="Requests per minute per key before 429 / 1008 (free plan: 30).")
@click.option("--monthly-credits", type=int, default=10_000, show_default=True,
              help="Credits per calendar month before 429 / 1010 (free plan: 10,000).")
@click.option("--daily-credits", type=int, help="Credits per UTC day before 429 / 1009 (the free plan has none).")
@click.option("--max-convert", type=int, default=1, show_default=True,
              help="Currencies allowed in one `convert` (free plan: 1).")
@click.option("--faults", "faults_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON file of faults to inject (see docs/sandbox.md).")
@click.option("--api-key", "api_keys", multiple=True,
              help=f"An accepted API key; repeat for several (default: the sandbox key {DEFAULT_API_KEY}).")
@click.option("--retry-after/--no-retry-after", default=False, show_default=True,
              help="Send Retry-After on 429 / 1008 (the real API does not document one).")
@click.option("--usage-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Keep credit usage in this file so a restart does not reset the month.")
def serve(host, port, seed, coins, exchanges, categories, clock_mode, start, rate, rate_limit, monthly_credits,
          daily_credits, max_convert, faults_file, api_keys, retry_after, usage_file) -> None:
    """Serve the API until interrupted; logs one line per request (never the key)."""
    from cryptolake.services.sandbox import faults
    from cryptolake.services.sandbox.clock import parse_time
    from cryptolake.services.sandbox.limits import Plan
    from cryptolake.services.sandbox.server import SandboxConfig, serve as run

    if start and clock_mode != "simulated":
        raise click.BadParameter("--start needs --clock simulated", param_hint="--start")
    try:
        config = SandboxConfig(
            host=host, port=port, seed=seed, coins=coins, exchanges=exchanges, categories=categories,
            clock=clock_mode, start=parse_time(start) if start else None, rate=rate,
            plan=Plan(monthly_credits, rate_limit, daily_credits, max_convert),
            api_keys=tuple(api_keys) or (DEFAULT_API_KEY,),
            faults=tuple(faults.load(faults_file.read_text())) if faults_file else (), retry_after=retry_after,
            usage_file=usage_file)
        run(config)
    except ValueError as exc:
        raise CryptolakeError(f"cannot start the sandbox: {exc}",
                              "Check the flags (cryptolake sandbox serve --help)") from None
    except OSError as exc:
        raise CryptolakeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                              "Pick another --port or stop the program using it") from None
