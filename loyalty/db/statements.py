"""Statements built once for the hot paths, from the table definitions."""

from __future__ import annotations

from sqlalchemy import Insert, Table, bindparam


def insert_every_column(table: Table, prefix: str) -> Insert:
    """An INSERT of every column but ``id``, each value the bind parameter ``prefix`` + the
    column's name, typed like the column. A column added to the table later is then a
    parameter the caller must give, not a value silently left out."""
    return table.insert().values(
        {
            column.name: bindparam(f"{prefix}{column.name}", type_=column.type)
            for column in table.columns
            if column.name != "id"
        }
    )
