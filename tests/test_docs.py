"""The documents that promise behaviour to API clients say what the code does."""

from __future__ import annotations

import re
from pathlib import Path

from loyalty.app.problems import STATUS_BY_CODE
from loyalty.domain.errors import ErrorCode

DOCS = Path(__file__).resolve().parent.parent / "docs"


def documented_statuses() -> dict[str, int]:
    table: dict[str, int] = {}
    for line in (DOCS / "ERRORS.md").read_text().splitlines():
        row = re.fullmatch(r"\| (\d{3}) \| (.+) \|", line)
        if row is None:
            continue
        for code in re.findall(r"`([a-z0-9_]+)`", row.group(2)):
            assert code not in table, f"{code} is listed twice in docs/ERRORS.md"
            table[code] = int(row.group(1))
    return table


def test_every_error_code_is_documented_with_its_status() -> None:
    mapped = {code.value: status for code, status in STATUS_BY_CODE.items()}
    assert documented_statuses() == mapped


def test_every_error_code_has_a_status() -> None:
    assert set(ErrorCode) == set(STATUS_BY_CODE)
