"""Which members' balances a transaction changed, told to listeners once it has committed.

The ledger's one write of a member balance (``ledger_writes.save_account``) records the
account's new figures on the connection; ``in_transaction`` takes them after the commit and
hands them to the engine's listeners (the app publishes them to the wallets that are open).
A transaction that rolls back tells nothing, and a retried one tells its last attempt only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger("loyalty.db")

_KEY = "loyalty_balance_changes"


@dataclass(frozen=True, slots=True)
class BalanceChange:
    program_id: int
    member_id: int
    posted: int
    held: int

    @property
    def available(self) -> int:
        return self.posted - self.held


Listener = Callable[[list[BalanceChange]], None]
_listeners: dict[int, list[Listener]] = {}


def listen(engine: AsyncEngine, listener: Listener) -> Callable[[], None]:
    """Call ``listener`` after every commit on ``engine`` that changed member balances;
    returns the function that stops it."""
    key = id(engine.sync_engine)
    _listeners.setdefault(key, []).append(listener)

    def stop() -> None:
        listeners = _listeners.get(key, [])
        if listener in listeners:
            listeners.remove(listener)
        if not listeners:
            _listeners.pop(key, None)

    return stop


def record(conn: AsyncConnection, change: BalanceChange) -> None:
    """Note a member's new balance in the current transaction (the last one per account wins)."""
    changes: dict[tuple[int, int], BalanceChange] = conn.info.setdefault(_KEY, {})
    changes[(change.program_id, change.member_id)] = change


def take(conn: AsyncConnection) -> list[BalanceChange]:
    """What the transaction recorded, forgotten on the connection (which the pool reuses)."""
    changes: dict[tuple[int, int], BalanceChange] = conn.info.pop(_KEY, {})
    return list(changes.values())


def announce(engine: AsyncEngine, changes: list[BalanceChange]) -> None:
    if not changes:
        return
    for listener in list(_listeners.get(id(engine.sync_engine), [])):
        try:
            listener(changes)
        except Exception:  # a listener must never fail the operation that committed
            log.exception("a balance listener failed")
