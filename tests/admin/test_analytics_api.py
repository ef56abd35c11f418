"""The analytics API: the figures as JSON and CSV, the RFM and at-risk lists, refusals of bad
periods, and who may read them (the figures themselves are checked by hand in
tests/services/test_analytics.py)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.admin.conftest import AdminStack, StaffSession
from tests.support.problems import assert_problem

#: A member name a spreadsheet would run as a formula.
FORMULA_NAME = '=HYPERLINK("https://evil.example","Hi")'
FEBRUARY = {"from": "2025-02-01", "to": "2025-02-28", "bucket": "week"}


def euros(amount: int) -> dict[str, Any]:
    return {
        "currency": "EUR",
        "lines": [{"line_id": "1", "sku": "BROT", "quantity": 1, "unit_price": amount * 100}],
    }


def shop_with_history(admin: AdminStack) -> dict[str, int]:
    """Mia buys weekly in January and then stays away; the other member buys once in
    February."""
    stack = admin.stack
    program = stack.create_program()
    pid = program["program_id"]
    mia = stack.enroll(pid, "Mia")
    other = stack.enroll(pid, FORMULA_NAME)
    for index, day in enumerate((16, 23, 30)):
        admin.clock.now = datetime(2025, 1, day, 12, tzinfo=UTC)
        stack.shop.ok(
            f"/programs/{pid}/orders",
            {"member_id": mia, "reference": f"mia-{index}", "basket": euros(10)},
        )
    admin.clock.now = datetime(2025, 2, 10, 12, tzinfo=UTC)
    stack.shop.ok(
        f"/programs/{pid}/orders",
        {"member_id": other, "reference": "other-1", "basket": euros(25)},
    )
    admin.clock.now = datetime(2025, 3, 5, 12, tzinfo=UTC)
    return {"program_id": pid, "mia": mia, "other": other}


def rows_of(response: httpx.Response) -> list[list[str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].startswith("attachment; filename=")
    assert response.content.startswith(b"\xef\xbb\xbf")  # UTF-8 byte-order mark
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))


def test_the_figures_as_json(any_admin: AdminStack) -> None:
    shop = shop_with_history(any_admin)
    owner = any_admin.session("owner")
    report = owner.read(f"/programs/{shop['program_id']}/analytics", FEBRUARY)
    assert report["program_id"] == shop["program_id"]
    assert report["period"] == {
        "first": "2025-02-01",
        "last": "2025-02-28",
        "timezone": "Europe/Berlin",
        "starts_at": "2025-01-31T23:00:00Z",
        "ends_at": "2025-02-28T23:00:00Z",
        "days": 28,
        "bucket": "week",
        "lapse_days": 90,
        "lookback_days": 365,
    }
    assert set(report) >= {
        "members",
        "customers",
        "purchases",
        "value",
        "points",
        "tiers",
        "nps",
        "referrals",
        "rfm",
        "at_risk_members",
        "series",
    }
    members, purchases, points = report["members"], report["purchases"], report["points"]
    assert (members["at_start"], members["at_end"], members["new"], members["active"]) == (
        2,
        2,
        0,
        1,
    )
    assert members["retention_percent"] == "100.0"
    assert (purchases["orders"], purchases["member_revenue"]) == (1, 2_500)
    assert purchases["repeat_purchase_rate_percent"] == "0.0"
    # No sales without a member are known: unknown, not zero.
    assert purchases["non_member_average_order_value"] is None
    # 30 points from January, 25 earned in February; nothing expired (no sweep ran).
    assert (points["liability_points_start"], points["issued"]) == (30, 25)
    assert (points["liability_points_end"], points["liability_end"]) == (55, 55)
    assert report["tiers"] is None  # the program has no tiers
    assert report["at_risk_members"] == 1
    assert [point["first"] for point in report["series"]] == [
        "2025-02-01",
        "2025-02-03",
        "2025-02-10",
        "2025-02-17",
        "2025-02-24",
    ]
    assert [point["points_issued"] for point in report["series"]] == [0, 0, 25, 0, 0]


def test_the_default_period_is_the_last_30_days(admin: AdminStack) -> None:
    shop = shop_with_history(admin)
    owner = admin.session("owner")
    period = owner.read(f"/programs/{shop['program_id']}/analytics")["period"]
    # The clock says 2025-03-05 13:00 in Berlin.
    assert (period["first"], period["last"], period["bucket"]) == (
        "2025-02-04",
        "2025-03-05",
        "day",
    )
    only_to = owner.read(f"/programs/{shop['program_id']}/analytics", {"to": "2025-01-31"})
    assert (only_to["period"]["first"], only_to["period"]["days"]) == ("2025-01-02", 30)
    only_from = owner.read(f"/programs/{shop['program_id']}/analytics", {"from": "2025-01-01"})
    assert (only_from["period"]["last"], only_from["period"]["bucket"]) == ("2025-03-05", "week")


def test_the_figures_as_csv(admin: AdminStack) -> None:
    shop = shop_with_history(admin)
    owner = admin.session("owner")
    pid = shop["program_id"]
    response = owner.get(f"/programs/{pid}/analytics.csv", FEBRUARY)
    rows = rows_of(response)
    assert response.headers["content-disposition"] == (
        f'attachment; filename="analytics-{pid}-2025-02-01-2025-02-28.csv"'
    )
    assert rows[0] == ["figure", "value"]
    figures = dict(rows[1:])
    assert figures["members.at_end"] == "2"
    assert figures["members.retention_percent"] == "100.0"
    assert figures["purchases.member_revenue"] == "2500"
    assert figures["purchases.non_member_sales"] == ""
    assert figures["points.liability_end"] == "55"
    assert figures["period.first"] == "2025-02-01"
    assert figures["tiers"] == ""
    assert figures["rfm.segments.champions"] in {"0", "1"}
    assert figures["at_risk_members"] == "1"
    assert figures["nps.comments_total"] == "0"
    assert not any(name.startswith(("series", "nps.comments.")) for name in figures)

    series = rows_of(owner.get(f"/programs/{pid}/analytics/series.csv", FEBRUARY))
    assert series[0] == [
        "first",
        "last",
        "members",
        "new_members",
        "active_members",
        "points_issued",
        "points_redeemed",
        "points_expired",
    ]
    assert series[3] == ["2025-02-10", "2025-02-16", "2", "0", "1", "25", "0", "0"]
    assert len(series) == 1 + 5

    comments = rows_of(owner.get(f"/programs/{pid}/analytics/comments.csv", FEBRUARY))
    assert comments == [["at", "score", "comment"]]


def test_rfm_and_at_risk(any_admin: AdminStack) -> None:
    shop = shop_with_history(any_admin)
    support = any_admin.session("support")
    pid = shop["program_id"]
    rfm = support.read(f"/programs/{pid}/analytics/rfm", FEBRUARY)
    assert (rfm["customers"], rfm["total"], rfm["last_day"]) == (2, 2, "2025-02-28")
    by_member = {member["member_id"]: member for member in rfm["members"]}
    # Mia: 3 purchases, 3000, last 30 Jan; the other: 1 purchase, 2500, 10 Feb.
    assert (by_member[shop["mia"]]["frequency"], by_member[shop["mia"]]["monetary"]) == (3, 3000)
    assert by_member[shop["other"]]["recency_days"] == 18  # 10 Feb 12:00Z to 28 Feb 23:00Z
    page = support.read(f"/programs/{pid}/analytics/rfm", {**FEBRUARY, "limit": 1, "offset": 1})
    assert (page["total"], len(page["members"])) == (2, 1)
    segment = by_member[shop["mia"]]["segment"]
    only = support.read(f"/programs/{pid}/analytics/rfm", {**FEBRUARY, "segment": segment})
    assert shop["mia"] in {member["member_id"] for member in only["members"]}

    at_risk = support.read(f"/programs/{pid}/analytics/at-risk", FEBRUARY)
    assert [
        (m["member_id"], m["purchases"], m["revenue"], m["usual_interval_days"])
        for m in at_risk["members"]
    ] == [(shop["mia"], 3, 3000, "7.0")]
    assert at_risk["members"][0]["last_purchase_on"] == "2025-01-30"
    assert at_risk["members"][0]["marketing_consent"] is False


def test_member_lists_as_csv_defuse_formulas(admin: AdminStack) -> None:
    shop = shop_with_history(admin)
    owner = admin.session("owner")
    pid = shop["program_id"]
    response = owner.get(f"/programs/{pid}/analytics/rfm.csv", FEBRUARY)
    rows = rows_of(response)
    assert response.headers["content-disposition"] == (
        f'attachment; filename="rfm-{pid}-2025-02-28.csv"'
    )
    assert rows[0][:4] == ["member_id", "display_name", "email", "last_purchase_on"]
    names = {row[0]: row[1] for row in rows[1:]}
    assert names[str(shop["mia"])] == "Mia"
    assert names[str(shop["other"])] == "'" + FORMULA_NAME

    at_risk = owner.get(f"/programs/{pid}/analytics/at-risk.csv", FEBRUARY)
    rows = rows_of(at_risk)
    assert at_risk.headers["content-disposition"] == (
        f'attachment; filename="at-risk-{pid}-2025-02-28.csv"'
    )
    assert rows[0] == [
        "member_id",
        "display_name",
        "email",
        "marketing_consent",
        "purchases",
        "revenue",
        "points_balance",
        "last_purchase_at",
        "last_purchase_on",
        "days_since_last_purchase",
        "usual_interval_days",
        "overdue_factor",
    ]
    assert rows[1][:7] == [str(shop["mia"]), "Mia", "", "false", "3", "3000", "30"]


@pytest.mark.parametrize(
    ("params", "code", "detail"),
    [
        ({"from": "2025-03-02", "to": "2025-03-01"}, "invalid_window", "must not lie after"),
        ({"from": "2020-01-01", "to": "2025-01-01"}, "invalid_window", "at most 1096 days"),
        ({"from": "2025-02-30"}, "validation_failed", "from"),
        ({"to": "yesterday"}, "validation_failed", "to"),
        ({"bucket": "hour"}, "validation_failed", "bucket"),
        ({"lapse_days": "3"}, "validation_failed", "lapse_days"),
        ({"lookback_days": "5000"}, "validation_failed", "lookback_days"),
    ],
)
def test_bad_periods_are_refused_clearly(
    admin: AdminStack, params: dict[str, str], code: str, detail: str
) -> None:
    pid = admin.stack.create_program()["program_id"]
    owner = admin.session("owner")
    for path in ("/analytics", "/analytics.csv", "/analytics/at-risk.csv"):
        if {"bucket", "lapse_days"} & set(params) and "at-risk" in path:
            continue  # the lists have no buckets and no lapse window
        body = assert_problem(owner.get(f"/programs/{pid}{path}", params), 400, code)
        assert detail in str(body), body


def test_who_may_read(any_admin: AdminStack) -> None:
    pid = any_admin.stack.create_program()["program_id"]
    rival_pid = any_admin.stack.create_program(any_admin.stack.rival, code="mond")["program_id"]
    paths = (
        "/analytics",
        "/analytics.csv",
        "/analytics/series.csv",
        "/analytics/comments.csv",
        "/analytics/rfm",
        "/analytics/rfm.csv",
        "/analytics/at-risk",
        "/analytics/at-risk.csv",
    )
    readers: list[StaffSession] = [
        any_admin.session(role) for role in ("owner", "program_manager", "support")
    ]
    cashier = any_admin.session("cashier")
    for path in paths:
        for reader in readers:
            assert reader.get(f"/programs/{pid}{path}").status_code == 200, (path, reader.email)
        assert_problem(cashier.get(f"/programs/{pid}{path}"), 403, "forbidden")
        assert_problem(readers[0].get(f"/programs/{rival_pid}{path}"), 404, "program_not_found")
        anonymous = any_admin.client.get(f"/api/v1/admin/programs/{pid}{path}")
        assert_problem(anonymous, 401, "unauthorized")


def test_the_api_is_documented(admin: AdminStack) -> None:
    schema = admin.client.get("/schema/openapi.json").json()
    paths = schema["paths"]
    assert "/api/v1/admin/programs/{program_id}/analytics" in paths
    parameters = {
        p["name"]
        for p in paths["/api/v1/admin/programs/{program_id}/analytics"]["get"]["parameters"]
    }
    assert {"from", "to", "bucket", "lapse_days", "lookback_days"} <= parameters
    assert "/api/v1/admin/programs/{program_id}/analytics/at-risk.csv" in paths


# --- The dashboard page -----------------------------------------------------------------------


def test_the_dashboard_page(admin: AdminStack) -> None:
    shop = shop_with_history(admin)
    pid = shop["program_id"]
    support = admin.page_session("support")
    page = support.page("/admin/analytics", {**FEBRUARY, "lang": "en"})
    assert page.status_code == 200, page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    body = page.text
    assert 'style="' not in body  # the CSP allows no inline style
    assert "<script>" not in body
    assert "Analytics · Bonuspunkte" in body
    assert 'id="chart-members"' in body
    assert 'id="chart-points"' in body
    assert 'id="chart-segments"' in body
    assert "The program has no tiers." in body
    # The links name the period shown, for the admin API under the same session.
    assert f"/api/v1/admin/programs/{pid}/analytics.csv?from=2025-02-01&amp;to=2025-02-28" in body
    # Mia is at risk, and the list says so.
    assert 'id="at-risk-table"' in body
    assert f'href="/admin/members/{shop["mia"]}">Mia</a>' in body
    german = support.page("/admin/analytics", {**FEBRUARY, "lang": "de"}).text
    assert "Kennzahlen · Bonuspunkte" in german
    assert "Das Programm hat keine Stufen." in german


def test_the_dashboard_page_explains_bad_choices(admin: AdminStack) -> None:
    admin.stack.create_program()
    rival = admin.stack.create_program(admin.stack.rival, code="mond")["program_id"]
    owner = admin.page_session("owner")
    reversed_ = owner.page("/admin/analytics", {"from": "2025-03-02", "to": "2025-03-01"})
    assert reversed_.status_code == 400
    assert (
        "The period is empty"
        in owner.page(
            "/admin/analytics", {"from": "2025-03-02", "to": "2025-03-01", "lang": "en"}
        ).text
    )
    not_a_date = owner.page("/admin/analytics", {"from": "März", "lang": "en"})
    assert not_a_date.status_code == 400
    assert "is not a date" in not_a_date.text
    too_long = owner.page("/admin/analytics", {"from": "2020-01-01", "lang": "en"})
    assert too_long.status_code == 400
    assert "at most 1096 days" in too_long.text
    other = owner.page("/admin/analytics", {"program": str(rival), "lang": "en"})
    assert other.status_code == 404
    assert "There is no such program." in other.text


def test_the_dashboard_page_without_a_program(admin: AdminStack) -> None:
    owner = admin.page_session("owner")
    page = owner.page("/admin/analytics", {"lang": "en"})
    assert page.status_code == 200
    assert "No program yet" in page.text


def test_cashiers_and_strangers_get_no_dashboard(admin: AdminStack) -> None:
    anonymous = admin.client.get("/admin/analytics", follow_redirects=False)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/admin/login?next=/admin/analytics"
    cashier = admin.page_session("cashier")
    assert cashier.page("/admin/analytics").status_code == 403
