"""The migrations build exactly the tables schema.py queries (a forgotten migration shows here)."""

from pathlib import Path

from sqlalchemy import create_engine, inspect

from settlerd.store import Store
from settlerd.store import schema as current


async def test_migrated_database_matches_the_current_schema(tmp_path: Path) -> None:
    path = tmp_path / "schema.db"
    await (await Store.open(str(path))).close()

    engine = create_engine(f"sqlite:///{path}")
    try:
        found = inspect(engine)
        assert set(found.get_table_names()) == set(current.metadata.tables)
        for name, table in current.metadata.tables.items():
            columns = {c["name"]: c for c in found.get_columns(name)}
            assert list(columns) == [c.name for c in table.columns], name
            for column in table.columns:
                assert columns[column.name]["nullable"] == column.nullable, f"{name}.{column.name}"
            assert found.get_pk_constraint(name)["constrained_columns"] == [c.name for c in table.primary_key]
            fks = {(f["constrained_columns"][0], f["referred_table"]) for f in found.get_foreign_keys(name)}
            assert fks == {(fk.parent.name, fk.column.table.name) for fk in table.foreign_keys}, name
    finally:
        engine.dispose()
