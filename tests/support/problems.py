"""What every refused request must look like: problem+json with the expected status and code."""

from __future__ import annotations

from typing import Any

from loyalty.app.problems import PROBLEM_JSON


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    """The body of a problem+json ``response`` with ``status`` and ``code`` (asserted)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    assert body["type"] == f"urn:loyalty:problem:{code}"
    return body
