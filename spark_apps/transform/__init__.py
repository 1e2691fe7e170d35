"""The transform Spark application: bronze Parquet snapshots -> silver Delta tables (see docs/transform.md).

Modules: tables (the silver contracts), state (incremental tracking through the ledger), quality (cleaning
rules), base (BaseTransformer: the shared build step), one module per domain (exchange, crypto + daily,
category, global_market, sentiment), maintenance (OPTIMIZE/VACUUM), runner (frequency groups), main (entry).
"""
