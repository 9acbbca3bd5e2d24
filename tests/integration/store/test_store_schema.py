"""The migrations build exactly the tables schema.py queries (a forgotten migration shows here)."""

from pathlib import Path

import pytest
from sqlalchemy import Table, create_engine, insert, inspect, text

from settlerd.store import Store, StoreError
from settlerd.store import schema as current
from settlerd.store.migrations import MIGRATIONS
from settlerd.store.timestamps import utcnow


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


def _unique_indexes(table: Table) -> set[tuple[str, ...]]:
    return {tuple(c.name for c in index.columns) for index in table.indexes if index.unique}


async def test_migrated_database_has_the_current_unique_indexes(tmp_path: Path) -> None:
    path = tmp_path / "unique.db"
    await (await Store.open(str(path))).close()

    engine = create_engine(f"sqlite:///{path}")
    try:
        found = inspect(engine)
        for name, table in current.metadata.tables.items():
            unique = {tuple(i["column_names"]) for i in found.get_indexes(name) if i["unique"]}
            assert unique == _unique_indexes(table), name
    finally:
        engine.dispose()


V1_LEG = (
    "INSERT INTO legs (swap_id, leg, chain, asset, amount, hashlock, sender, recipient, timelock, "
    "confirmations, final) VALUES (:id, :leg, 'evm', 'ETH', '1', :h, 'a', 'b', 1, 0, 0)"
)


def _v1_database(path: Path, hashlocks: list[str]) -> None:
    """A database as version 1 left it, with one swap per entry of ``hashlocks``."""
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            MIGRATIONS[0].apply(conn)
            current.schema_version.create(conn)
            conn.execute(
                insert(current.schema_version).values(version=1, description="v1", applied_at=utcnow())
            )
            for i, hashlock in enumerate(hashlocks):
                conn.execute(
                    text(
                        "INSERT INTO swaps VALUES (:id, 'participant', 'accepted', 'desk-a', '{}', "
                        "'2026-01-01 00:00:00', '2026-01-01 00:00:00', NULL)"
                    ),
                    {"id": f"swap-{i}"},
                )
                for leg in (1, 2):
                    conn.execute(text(V1_LEG), {"id": f"swap-{i}", "leg": leg, "h": hashlock})
    finally:
        engine.dispose()


async def test_upgrading_a_database_whose_swaps_share_a_hashlock_names_them(tmp_path: Path) -> None:
    shared, other = "ab" * 32, "cd" * 32
    _v1_database(tmp_path / "shared.db", [shared, other, shared])
    with pytest.raises(StoreError, match=f"migration 2 .*first: {shared} in swaps swap-0, swap-2"):
        await Store.open(str(tmp_path / "shared.db"))

    _v1_database(tmp_path / "clean.db", [shared, other])
    store = await Store.open(str(tmp_path / "clean.db"))
    try:
        assert await store.swaps_with_hashlock(bytes.fromhex(shared)) == ["swap-0"]
    finally:
        await store.close()
