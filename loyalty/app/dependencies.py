"""Services live on ``app.state`` for the life of the process; handlers get them injected."""

from __future__ import annotations

from litestar.datastructures import State

from loyalty.services.ledger import Ledger
from loyalty.services.programs import Programs
from loyalty.services.queries import Queries


def provide_ledger(state: State) -> Ledger:
    ledger: Ledger = state.ledger
    return ledger


def provide_programs(state: State) -> Programs:
    programs: Programs = state.programs
    return programs


def provide_queries(state: State) -> Queries:
    queries: Queries = state.queries
    return queries
