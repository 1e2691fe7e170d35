"""No SQL in the product is built by formatting values into its text: values are bound parameters, and
identifiers go through the driver's or SQLAlchemy's quoting. Checked on the source with `ast`, so a new
`execute(f"... {value}")` fails here before it reaches a database."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PRODUCT = ("cryptolake", "services", "spark_apps", "migrations", "warehouse", "dags")
SINKS = {"execute", "executemany", "exec_driver_sql", "text", "SQL", "mogrify"}  # where SQL text goes in
QUOTING = {"quote", "quote_identifier", "format_table", "format_column", "Identifier", "Literal"}

# (file, function, interpolated expression) -> why it is safe. Only names fixed in code, never input.
ALLOWED = {
    ("spark_apps/load/loader.py", "*", "*"):
        "the loader's SQL is generated from the SQLAlchemy models' table, column and key names (checked below to "
        "be plain lower-case identifiers) and the staging table named after them; every value is bound (:t, :v)",
    ("migrations/env.py", "<module>", "VERSION_SCHEMA"): "a constant schema name",
    ("migrations/versions/0001_initial_warehouse_schema.py", "upgrade", "schema"):
        "the loop over the constant SCHEMAS tuple",
}


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        node = node.func
    return node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")


def _holes(node: ast.AST) -> list[ast.AST] | None:
    """The expressions formatted into a string expression, or None when it is not built by formatting."""
    if isinstance(node, ast.JoinedStr):
        return [v.value for v in node.values if isinstance(v, ast.FormattedValue)]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and isinstance(node.left, (ast.Constant,
                                                                                            ast.JoinedStr)):
        return list(node.right.elts) if isinstance(node.right, ast.Tuple) else [node.right]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        parts = [p for p in (node.left, node.right) if not isinstance(p, ast.Constant)]
        nested = [_holes(p) for p in parts]
        return [h for p, n in zip(parts, nested) for h in (n if n is not None else [p])]
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format"
            and isinstance(node.func.value, (ast.Constant, ast.JoinedStr))):
        return [*node.args, *(k.value for k in node.keywords)]
    return None


class _Finder(ast.NodeVisitor):
    def __init__(self, path: str):
        self.path, self.function, self.found = path, "<module>", []
        self.assigned: dict[str, ast.AST] = {}

    def visit_FunctionDef(self, node):
        outer, saved = self.function, self.assigned
        self.function, self.assigned = node.name, {}
        self.generic_visit(node)
        self.function, self.assigned = outer, saved

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Assign(self, node):
        for target in node.targets:
            if isinstance(target, ast.Name):
                self.assigned[target.id] = node.value
        self.generic_visit(node)

    def visit_Call(self, node):
        if _name(node) in SINKS and node.args:
            sql = node.args[0]
            if isinstance(sql, ast.Name) and sql.id in self.assigned:  # query = f"..."; execute(query)
                sql = self.assigned[sql.id]
            for hole in _holes(sql) or []:
                if _name(hole) in QUOTING:
                    continue
                expr = ast.unparse(hole)
                if not any((self.path, fn, e) in ALLOWED for fn in (self.function, "*") for e in (expr, "*")):
                    self.found.append(f"{self.path}:{node.lineno} {self.function}(): {expr!r} formatted into "
                                      f"{_name(node)}()")
        self.generic_visit(node)


def scan(path: Path, source: str | None = None) -> list[str]:
    finder = _Finder(str(path.relative_to(REPO)) if path.is_absolute() else str(path))
    finder.visit(ast.parse(source if source is not None else path.read_text()))
    return finder.found


def scan_unallowed(path: Path) -> list[str]:
    """What the scan would report in this file without the allow-list."""
    finder = _Finder(str(path.relative_to(REPO)))
    saved = dict(ALLOWED)
    ALLOWED.clear()
    try:
        finder.visit(ast.parse(path.read_text()))
    finally:
        ALLOWED.update(saved)
    return finder.found


def test_model_identifiers_need_no_quoting():
    """What makes the loader's generated SQL safe: every schema, table and column name is a plain identifier."""
    import re

    from warehouse.models import Base

    plain = re.compile(r"^[a-z_][a-z0-9_]*$")
    names = [n for table in Base.metadata.tables.values()
             for n in (table.schema or "", table.name, *(c.name for c in table.columns))]
    assert len(names) > 100
    assert [n for n in names if n and not plain.match(n)] == []


def _product_files() -> list[Path]:
    return sorted(p for top in PRODUCT for p in (REPO / top).rglob("*.py"))


def test_no_value_is_formatted_into_sql():
    files = _product_files()
    assert len(files) > 50
    found = [line for path in files for line in scan(path)]
    assert not found, "SQL built by string formatting (bind the value, or quote the identifier):\n" + "\n".join(found)


def test_every_allowed_interpolation_still_exists():
    """An allow-list entry whose code is gone would hide the next offender of the same name."""
    for path, function, expr in ALLOWED:
        if expr == "*":
            assert scan_unallowed(REPO / path), f"{path} formats no SQL any more: drop it from ALLOWED"
            continue
        tree = ast.parse((REPO / path).read_text())
        formatted = {ast.unparse(v.value) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr)
                     for v in node.values if isinstance(v, ast.FormattedValue)}
        assert expr in formatted, f"{path}: {expr} no longer formatted: drop it from ALLOWED"


def test_the_scan_finds_each_way_of_formatting_sql():
    source = '''
def f(connection, cursor, name, day):
    connection.execute(text(f"SELECT * FROM t WHERE name = '{name}'"))
    cursor.execute("DELETE FROM t WHERE day = '%s'" % day)
    cursor.execute("DELETE FROM t WHERE day = '{}'".format(day))
    query = "SELECT " + name + " FROM t"
    connection.exec_driver_sql(query)
    connection.execute(text("SELECT :n"), {"n": name})                   # bound: fine
    connection.execute(text(f"SELECT 1 FROM {quote(name)}"))             # quoted: fine
    cursor.execute(sql.SQL("SELECT {}").format(sql.Identifier(name)))    # psycopg2 composition: fine
'''
    found = scan(Path("example.py"), source)
    assert [line.split()[0] for line in found] == ["example.py:3", "example.py:4", "example.py:5", "example.py:7"]
