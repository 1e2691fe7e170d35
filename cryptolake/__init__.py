"""CryptoLakehouse core: settings, logging, lake paths and I/O, run ledger, CLI, local stack."""
