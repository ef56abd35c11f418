"""``loyalty ledger verify``: recompute what is cached and check every ledger invariant.

Each check is one aggregate query over the whole ledger, run in one snapshot (REPEATABLE READ on
PostgreSQL; SQLite transactions are snapshots already), so a verify running beside live traffic
compares numbers from a single instant.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


class Discrepancy(msgspec.Struct, frozen=True):
    check: str
    subject: str
    expected: int
    actual: int

    def __str__(self) -> str:
        return f"{self.check}: {self.subject}: expected {self.expected}, found {self.actual}"


#: (check name, SQL returning rows of (subject, expected, actual) for every violation).
CHECKS: Sequence[tuple[str, str]] = (
    (
        "journal entries sum to zero",
        """SELECT 'journal ' || journal_id, 0, SUM(amount) FROM entries
           GROUP BY journal_id HAVING SUM(amount) <> 0""",
    ),
    (
        "all accounts together sum to zero",
        """SELECT 'all entries', 0, COALESCE(SUM(amount), 0) FROM entries
           HAVING COALESCE(SUM(amount), 0) <> 0""",
    ),
    (
        "cached posted balance equals the sum of entries",
        """SELECT 'account ' || a.id, COALESCE(e.total, 0), a.posted FROM accounts a
           LEFT JOIN (SELECT account_id, SUM(amount) AS total FROM entries GROUP BY account_id) e
             ON e.account_id = a.id
           WHERE a.kind = 'member' AND a.posted <> COALESCE(e.total, 0)""",
    ),
    (
        "system accounts keep no cached balance",
        """SELECT 'account ' || id, 0, posted + held FROM accounts
           WHERE kind <> 'member' AND (posted <> 0 OR held <> 0)""",
    ),
    (
        "lot remainders sum to the posted balance",
        """SELECT 'account ' || a.id, a.posted, COALESCE(l.total, 0) FROM accounts a
           LEFT JOIN (SELECT account_id, SUM(remaining) AS total FROM lots GROUP BY account_id) l
             ON l.account_id = a.id
           WHERE a.kind = 'member' AND a.posted <> COALESCE(l.total, 0)""",
    ),
    (
        "available balance is not negative",
        """SELECT 'account ' || id, 0, posted - held FROM accounts WHERE posted - held < 0""",
    ),
    (
        "cached held equals pending holds",
        """SELECT 'account ' || a.id, COALESCE(h.total, 0), a.held FROM accounts a
           LEFT JOIN (SELECT account_id, SUM(points) AS total FROM holds
                      WHERE status = 'pending' GROUP BY account_id) h ON h.account_id = a.id
           WHERE a.kind = 'member' AND a.held <> COALESCE(h.total, 0)""",
    ),
    (
        "cached held equals points held in lots",
        """SELECT 'account ' || a.id, a.held, COALESCE(l.total, 0) FROM accounts a
           LEFT JOIN (SELECT account_id, SUM(held) AS total FROM lots GROUP BY account_id) l
             ON l.account_id = a.id
           WHERE a.kind = 'member' AND a.held <> COALESCE(l.total, 0)""",
    ),
    (
        "lot bounds 0 <= held <= remaining <= original",
        """SELECT 'lot ' || id, original, remaining FROM lots
           WHERE held < 0 OR held > remaining OR remaining > original OR original <= 0""",
    ),
    (
        "lot remainder equals original less its draws",
        """SELECT 'lot ' || l.id, l.original - COALESCE(d.total, 0), l.remaining FROM lots l
           LEFT JOIN (SELECT ld.lot_id, SUM(ld.points) AS total FROM lot_draws ld
                      JOIN journals j ON j.id = ld.journal_id
                      WHERE j.kind <> 'hold' GROUP BY ld.lot_id) d ON d.lot_id = l.id
           WHERE l.remaining <> l.original - COALESCE(d.total, 0)""",
    ),
    (
        "lot held equals the draws of its pending holds",
        """SELECT 'lot ' || l.id, COALESCE(d.total, 0), l.held FROM lots l
           LEFT JOIN (SELECT ld.lot_id, SUM(ld.points) AS total FROM lot_draws ld
                      JOIN journals j ON j.id = ld.journal_id AND j.kind = 'hold'
                      JOIN holds h ON h.id = j.hold_id AND h.status = 'pending'
                      GROUP BY ld.lot_id) d ON d.lot_id = l.id
           WHERE l.held <> COALESCE(d.total, 0)""",
    ),
    (
        "journal delta equals its entries on the member account",
        """SELECT 'journal ' || j.id, j.delta, COALESCE(e.total, 0) FROM journals j
           LEFT JOIN (SELECT journal_id, account_id, SUM(amount) AS total FROM entries
                      GROUP BY journal_id, account_id) e
             ON e.journal_id = j.id AND e.account_id = j.account_id
           WHERE j.delta <> COALESCE(e.total, 0)""",
    ),
    (
        "refunds and reversal of a journal do not exceed it",
        """SELECT 'journal ' || o.id, o.points, SUM(r.points) FROM journals o
           JOIN journals r ON r.reverses_id = o.id
           GROUP BY o.id, o.points HAVING SUM(r.points) > o.points""",
    ),
    (
        "a journal is reversed at most once",
        """SELECT 'journal ' || reverses_id, 1, COUNT(*) FROM journals
           WHERE kind = 'reversal' GROUP BY reverses_id HAVING COUNT(*) > 1""",
    ),
    (
        "a hold resolves at most once and captures at most what it held",
        """SELECT 'hold ' || h.id, 1, COUNT(j.id) FROM holds h
           LEFT JOIN journals j ON j.hold_id = h.id AND j.kind <> 'hold'
           GROUP BY h.id, h.status, h.captured, h.points
           HAVING COUNT(j.id) > 1 OR (h.status <> 'pending' AND COUNT(j.id) <> 1)
              OR (h.status = 'pending' AND COUNT(j.id) <> 0) OR h.captured > h.points""",
    ),
)


async def verify_ledger(engine: AsyncEngine) -> list[Discrepancy]:
    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        else:
            conn = await conn.execution_options(loyalty_read_only=True)
        async with conn.begin():
            return await verify_in(conn)


async def verify_in(conn: AsyncConnection) -> list[Discrepancy]:
    found: list[Discrepancy] = []
    for name, sql in CHECKS:
        for subject, expected, actual in await conn.execute(text(sql)):
            found.append(Discrepancy(name, str(subject), int(expected), int(actual)))
    return found
