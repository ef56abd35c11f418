"""Services live on ``app.state`` for the life of the process; handlers get them injected."""

from __future__ import annotations

from litestar.datastructures import State

from loyalty.services.ledger import Ledger
from loyalty.services.orders import Orders
from loyalty.services.programs import Programs
from loyalty.services.queries import Queries
from loyalty.services.rewards import Rewards
from loyalty.services.rule_sets import RuleSets
from loyalty.services.staff import StaffDirectory
from loyalty.services.tiers import Tiers


def provide_ledger(state: State) -> Ledger:
    ledger: Ledger = state.ledger
    return ledger


def provide_programs(state: State) -> Programs:
    programs: Programs = state.programs
    return programs


def provide_queries(state: State) -> Queries:
    queries: Queries = state.queries
    return queries


def provide_staff_directory(state: State) -> StaffDirectory:
    directory: StaffDirectory = state.staff_directory
    return directory


def provide_rewards(state: State) -> Rewards:
    rewards: Rewards = state.rewards
    return rewards


def provide_orders(state: State) -> Orders:
    orders: Orders = state.orders
    return orders


def provide_tiers(state: State) -> Tiers:
    tiers: Tiers = state.tiers
    return tiers


def provide_rule_sets(state: State) -> RuleSets:
    rule_sets: RuleSets = state.rule_sets
    return rule_sets
