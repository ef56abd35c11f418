"""Liveness, readiness, stores, the OpenAPI document, Swagger UI served locally, the front page,
and the problem+json answers of the framework's own errors (404, 405)."""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

import pytest
from litestar.stores.memory import MemoryStore
from litestar.stores.redis import RedisStore
from litestar.testing import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from loyalty.app.factory import create_app
from loyalty.app.settings import Settings, parse_api_keys
from tests.app.conftest import Stack
from tests.support.problems import assert_problem
from tests.support.services import run_async

PROBLEM_JSON = "application/problem+json"
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"

#: Every operation of the JSON API, as the OpenAPI document must list it.
#: POSTs that only compute (a basket's quote) and so take no Idempotency-Key.
READ_ONLY_POSTS = {
    "/api/v1/programs/{program_id}/members/{member_id}/quote",
    "/api/v1/pos/identify",
    "/api/v1/pos/preview",
}
#: Till writes keyed by the POS's own ids (transaction id, refund id) instead of the header.
KEYED_BY_POS_IDS = {
    "/api/v1/pos/transactions/{transaction_id}/complete",
    "/api/v1/pos/transactions/{transaction_id}/refunds",
    "/api/v1/pos/transactions/{transaction_id}/void",
    # Keyed by the email address: enrolling it again is the same member.
    "/api/v1/pos/members",
}
#: Where the vendors' own protocols are mounted (tests/pos/test_vendor_routes.py).
VENDOR_PATH = "/api/v1/pos/vendors"
#: The wallet's API authenticates members by their session cookie (tests/wallet).
WALLET_PATH = "/api/v1/wallet"
API_OPERATIONS = {
    ("get", "/api/v1/pos/terminal"),
    ("post", "/api/v1/pos/identify"),
    ("post", "/api/v1/pos/preview"),
    ("post", "/api/v1/pos/members"),
    ("post", "/api/v1/pos/transactions/{transaction_id}/redemptions"),
    ("post", "/api/v1/pos/transactions/{transaction_id}/complete"),
    ("post", "/api/v1/pos/transactions/{transaction_id}/refunds"),
    ("post", "/api/v1/pos/transactions/{transaction_id}/void"),
    ("get", "/api/v1/pos/transactions"),
    ("get", "/api/v1/pos/transactions/{transaction_id}"),
    ("post", "/api/v1/programs/{program_id}/members/{member_id}/quote"),
    ("post", "/api/v1/programs/{program_id}/orders"),
    ("get", "/api/v1/programs/{program_id}/orders/{reference}"),
    ("post", "/api/v1/programs/{program_id}/orders/{reference}/returns"),
    ("get", "/api/v1/programs/{program_id}/members/{member_id}/tier"),
    ("get", "/api/v1/programs/{program_id}/rewards"),
    ("get", "/api/v1/programs/{program_id}/members/{member_id}/rewards"),
    ("post", "/api/v1/programs/{program_id}/members/{member_id}/rewards/{reward_code}/redeem"),
    ("get", "/api/v1/programs/{program_id}/members/{member_id}/redemptions"),
    ("get", "/api/v1/programs/{program_id}/redemptions/{redemption_id}"),
    ("post", "/api/v1/programs/{program_id}/redemptions/{redemption_id}/complete"),
    ("post", "/api/v1/programs/{program_id}/redemptions/{redemption_id}/release"),
    ("get", "/api/v1/programs"),
    ("post", "/api/v1/programs"),
    ("get", "/api/v1/programs/{program_id}"),
    ("post", "/api/v1/programs/{program_id}/members"),
    ("get", "/api/v1/members/{member_id}"),
    ("get", "/api/v1/programs/{program_id}/members/{member_id}/balance"),
    ("get", "/api/v1/programs/{program_id}/members/{member_id}/history"),
    ("post", "/api/v1/programs/{program_id}/members/{member_id}/earn"),
    ("post", "/api/v1/programs/{program_id}/members/{member_id}/redeem"),
    ("post", "/api/v1/programs/{program_id}/members/{member_id}/holds"),
    ("post", "/api/v1/programs/{program_id}/members/{member_id}/adjustments"),
    ("get", "/api/v1/programs/{program_id}/holds/{hold_id}"),
    ("post", "/api/v1/programs/{program_id}/holds/{hold_id}/capture"),
    ("post", "/api/v1/programs/{program_id}/holds/{hold_id}/release"),
    ("get", "/api/v1/programs/{program_id}/journals/{journal_id}"),
    ("post", "/api/v1/programs/{program_id}/journals/{journal_id}/refund"),
    ("post", "/api/v1/programs/{program_id}/journals/{journal_id}/reverse"),
    ("post", "/api/v1/programs/{program_id}/transfers"),
}


# --- liveness and readiness ------------------------------------------------------------------


def test_health_answers_ok(stack: Stack) -> None:
    response = stack.client.get("/health")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"status": "ok"}


def test_ready_checks_the_database(stack: Stack) -> None:
    response = stack.client.get("/ready")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"status": "ready", "checks": {"database": "ok"}}


@pytest.mark.redis
def test_ready_checks_redis_when_configured(
    sqlite_url: str, redis_url: str, stack_factory: Callable[..., Stack]
) -> None:
    stack = stack_factory(sqlite_url, redis_url=redis_url)
    response = stack.client.get("/ready")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}


def test_ready_answers_503_when_redis_is_unreachable(
    sqlite_url: str, stack_factory: Callable[..., Stack]
) -> None:
    stack = stack_factory(sqlite_url, redis_url=UNREACHABLE_REDIS)
    response = stack.client.get("/ready")
    body = assert_problem(response, 503, "service_unavailable")
    assert "redis" in body["detail"]
    assert "database" not in body["detail"]
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("error: ")
    assert response.headers["retry-after"] == "5"
    # Liveness does not depend on Redis.
    assert stack.client.get("/health").status_code == 200


def test_shutdown_closes_the_database_connections(sqlite_url: str) -> None:
    """create_app() makes the engine, so the app's shutdown must close its connections, also
    when the app is not the first one built in the process (tests, an embedding server)."""
    settings = Settings(
        database_url=sqlite_url,
        api_clients=parse_api_keys("c=secret@1"),
        sweep_interval_seconds=0,
    )
    left_open = []
    for _ in range(2):
        app = create_app(settings)
        with TestClient(app) as client:
            assert client.get("/ready").status_code == 200
            engine: AsyncEngine = app.state.engine
        pool = engine.pool
        assert isinstance(pool, QueuePool)
        left_open.append(pool.checkedin())
        run_async(engine.dispose)  # tidy up whatever the app left, before asserting
    assert left_open == [0, 0]


# --- stores ----------------------------------------------------------------------------------


def test_without_redis_the_stores_are_in_memory(stack: Stack) -> None:
    assert isinstance(stack.app.stores.get("x"), MemoryStore)
    assert isinstance(stack.app.stores.get("sessions"), MemoryStore)


@pytest.mark.redis
def test_with_redis_the_stores_are_redis_stores(
    sqlite_url: str, redis_url: str, stack_factory: Callable[..., Stack]
) -> None:
    stack = stack_factory(sqlite_url, redis_url=redis_url)
    store = stack.app.stores.get("x")
    assert isinstance(store, RedisStore)
    # The store really talks to the configured Redis (namespaced by its name).
    stack.run(store.set, "greeting", b"servus")
    assert stack.run(store.get, "greeting") == b"servus"
    other = stack.app.stores.get("y")
    assert isinstance(other, RedisStore)
    assert stack.run(other.get, "greeting") is None
    stack.run(store.delete_all)


# --- OpenAPI and Swagger UI ------------------------------------------------------------------


def _openapi(stack: Stack) -> dict[str, Any]:
    response = stack.client.get("/schema/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _ours(path: str) -> bool:
    """Paths of our own API with bearer authentication (not admin, not the vendors' own)."""
    return path.startswith("/api/v1") and not path.startswith(
        ("/api/v1/admin", VENDOR_PATH, WALLET_PATH)
    )


def test_openapi_lists_every_api_route(stack: Stack) -> None:
    document = _openapi(stack)
    listed = {
        (method, path)
        for path, operations in document["paths"].items()
        if _ours(path)
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    }
    assert listed == API_OPERATIONS
    # ... and every route the app actually serves under /api/v1 is in that list.
    served = {
        (method.lower(), re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path))
        for route in stack.app.routes
        if _ours(route.path)
        for method in route.methods
        if method not in {"HEAD", "OPTIONS"}
    }
    assert served == API_OPERATIONS
    # The vendors' own protocols authenticate as each vendor does, not with our bearer keys.
    vendor_operation = document["paths"][f"{VENDOR_PATH}/{{vendor}}/{{endpoint}}"]["post"]
    assert vendor_operation.get("security", []) == []
    for method, path in API_OPERATIONS:
        operation = document["paths"][path][method]
        assert operation["security"] == [{"BearerToken": []}], (method, path)
        if method == "post" and path not in READ_ONLY_POSTS | KEYED_BY_POS_IDS:
            names = {p["name"] for p in operation["parameters"]}
            assert "Idempotency-Key" in names, path
    assert document["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"
    # The admin API takes staff session tokens instead, everywhere but at the login.
    for path, operations in document["paths"].items():
        if path.startswith("/api/v1/admin") and path != "/api/v1/admin/login":
            for method, operation in operations.items():
                assert operation["security"] == [{"StaffToken": []}], (method, path)
    assert "Problem" in document["components"]["schemas"]


def _problem_responses_missing(document: dict[str, Any]) -> list[str]:
    """Every API operation must document the problems it answers, as problem+json: 401 (all
    need a key), 400 (bad input), 404 (a path id not found) where it has path ids, and on every
    write 409 (key in flight) and 422 (key reused with another body)."""
    missing = []
    for method, path in sorted(API_OPERATIONS):
        responses = document["paths"][path][method]["responses"]
        wanted = {"401"}
        if "{" in path or method == "post":
            wanted.add("400")
        if "{" in path:
            wanted.add("404")
        if method == "post":
            wanted |= {"409", "422"}
        for status in sorted(wanted):
            content = responses.get(status, {}).get("content", {})
            schema = content.get(PROBLEM_JSON, {}).get("schema", {})
            if schema.get("$ref") != "#/components/schemas/Problem":
                missing.append(f"{method.upper()} {path} {status}: {sorted(content)}")
    return missing


def test_openapi_documents_the_problem_responses(stack: Stack) -> None:
    document = _openapi(stack)
    # /ready documents its 503 as a problem.
    ready = document["paths"]["/ready"]["get"]["responses"]["503"]
    assert ready["content"][PROBLEM_JSON]["schema"] == {"$ref": "#/components/schemas/Problem"}
    problem = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "code"} <= set(problem["required"])
    assert _problem_responses_missing(document) == []


class _Assets(HTMLParser):
    """Collects the URLs a page makes the browser load (scripts, styles, icons, images)."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self.other: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "script" and values.get("src"):
            self.scripts.append(values["src"])
        elif tag == "link" and values.get("href"):
            if "stylesheet" in values.get("rel", ""):
                self.styles.append(values["href"])
            else:
                self.other.append(values["href"])
        elif tag in {"img", "iframe"} and values.get("src"):
            self.other.append(values["src"])
        elif tag == "a" and values.get("href"):
            self.links.append(values["href"])


def _swagger(stack: Stack) -> _Assets:
    response = stack.client.get("/schema/swagger")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = _Assets()
    page.feed(response.text)
    return page


def test_swagger_ui_scripts_and_styles_are_served_locally(stack: Stack) -> None:
    page = _swagger(stack)
    assert sorted(page.scripts) == [
        "/static/swagger-ui/swagger-ui-bundle.js",
        "/static/swagger-ui/swagger-ui-standalone-preset.js",
    ]
    assert page.styles == ["/static/swagger-ui/swagger-ui.css"]
    for url in page.scripts + page.styles:
        asset = stack.client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000, url
    assert stack.client.get("/static/swagger-ui/swagger-ui-bundle.js").headers[
        "content-type"
    ].split(";")[0] in {"text/javascript", "application/javascript"}
    assert (
        stack.client.get("/static/swagger-ui/swagger-ui.css")
        .headers["content-type"]
        .startswith("text/css")
    )


def test_swagger_ui_loads_nothing_from_other_hosts(stack: Stack) -> None:
    """No CDN at all (DSGVO: a browser opening the docs must not contact third parties)."""
    page = _swagger(stack)
    external = [
        url for url in page.scripts + page.styles + page.other if re.match(r"^(https?:)?//", url)
    ]
    assert external == []


def test_front_page_links_to_the_docs(stack: Stack) -> None:
    response = stack.client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = _Assets()
    page.feed(response.text)
    assert "/schema/swagger" in page.links
    assert "/schema/openapi.json" in page.links
    for link in page.links:
        assert stack.client.get(link).status_code == 200, link


# --- the framework's own errors are problems too ---------------------------------------------


@pytest.mark.parametrize(
    "path", ["/nope", "/api/v1/nope", "/api/v1/programs/abc", "/static/swagger-ui/missing.js"]
)
def test_unknown_path_is_a_not_found_problem(stack: Stack, path: str) -> None:
    body = assert_problem(stack.client.get(path), 404, "not_found")
    assert body["instance"] == path


@pytest.mark.parametrize(
    ("method", "path"),
    [("post", "/health"), ("delete", "/ready"), ("delete", "/api/v1/programs"), ("put", "/")],
)
def test_wrong_method_is_a_method_not_allowed_problem(stack: Stack, method: str, path: str) -> None:
    response = stack.client.request(method.upper(), path)
    assert_problem(response, 405, "method_not_allowed")
