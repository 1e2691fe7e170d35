"""The models mirror the silver tables (names, types, NOT NULL), so a silver change cannot silently miss the
warehouse; every table and column is documented for BI tools; load order and upsert kinds follow silver."""

from __future__ import annotations

from pyspark.sql import types as T
from sqlalchemy import ARRAY, BigInteger, Boolean, Date, DateTime, Double, Integer, Text

from cryptolake.spark_apps.transform.tables import TABLE_LIST
from cryptolake.warehouse.models import Base, DW_TABLES, load_order, upsert_kind

COMPATIBLE = {T.LongType: BigInteger, T.IntegerType: Integer, T.DoubleType: Double, T.StringType: Text,
              T.BooleanType: Boolean, T.DateType: Date}


def compatible(spark_type: T.DataType, column) -> bool:
    if isinstance(spark_type, T.TimestampType):
        return isinstance(column.type, DateTime) and column.type.timezone
    if isinstance(spark_type, T.ArrayType):
        return isinstance(column.type, ARRAY) and isinstance(column.type.item_type, Text)
    return type(column.type) is COMPATIBLE[type(spark_type)]


def test_every_silver_table_has_its_warehouse_table_with_the_same_columns_types_and_not_nulls():
    assert set(DW_TABLES) == {t.name for t in TABLE_LIST}
    for silver in TABLE_LIST:
        table = DW_TABLES[silver.name].__table__
        assert set(table.columns.keys()) == set(silver.column_names), silver.name
        for field in silver.schema.fields:
            column = table.columns[field.name]
            assert compatible(field.dataType, column), (silver.name, field.name, field.dataType, column.type)
            assert column.nullable == (field.nullable and not column.primary_key), (silver.name, field.name)


def test_primary_keys_are_the_silver_merge_keys():
    for silver in TABLE_LIST:
        expected = ("crypto_id", "snapshot_date") if silver.kind == "daily" else silver.merge_keys
        assert set(DW_TABLES[silver.name].__table__.primary_key.columns.keys()) == set(expected), silver.name


def test_upsert_kind_follows_what_silver_does_to_a_row():
    for silver in TABLE_LIST:
        assert upsert_kind(silver.name) == ("nothing" if silver.kind == "temporal" else "update"), silver.name


def test_load_order_puts_every_table_after_the_tables_it_references():
    order = [t.name for t in load_order()]
    assert len(order) == 14
    for table in load_order():
        for fk in table.foreign_keys:
            assert order.index(fk.column.table.name) < order.index(table.name), (table.name, fk.target_fullname)
    assert order.index("dim_crypto_id") < order.index("fact_crypto_market")


def test_every_table_and_column_has_a_comment_for_bi_tools():
    for table in Base.metadata.tables.values():
        assert table.comment and all(c.comment for c in table.columns), table.fullname
