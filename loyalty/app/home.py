"""The front page of a running instance: where everything is."""

from __future__ import annotations

from html import escape
from typing import Any

from litestar import MediaType, Request, get
from sqlalchemy import select

from loyalty.db.engine import in_transaction
from loyalty.db.tables import programs

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>loyalty</title>
<style>
  body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 42rem; margin: 3rem auto;
         padding: 0 1rem; color: #1d2330; }}
  h1 {{ font-size: 1.6rem; margin-bottom: .2rem; }}
  h2 {{ font-size: 1.1rem; margin: 1.6rem 0 .4rem; }}
  p.lead {{ color: #4a5468; margin-top: 0; }}
  ul {{ padding-left: 1.1rem; }}
  li {{ margin: .4rem 0; }}
  code {{ background: #f1f3f7; padding: .1rem .3rem; border-radius: 4px; }}
  a {{ color: #0b57d0; }}
</style>
</head>
<body>
<h1>loyalty</h1>
<p class="lead">Ledger-based loyalty points platform &middot; Treuepunkte-Plattform</p>
<h2>Members &middot; Mitglieder</h2>
<ul>
{wallets}
</ul>
<h2>Shops &middot; Kasse</h2>
<ul>
  <li><a href="/pos">Cashier page &middot; Kassenseite</a> (terminal key or staff login)</li>
</ul>
<h2>Back office &middot; Verwaltung</h2>
<ul>
  <li><a href="/admin/login">Back office &middot; Verwaltung</a>: analytics, programs, members,
      approvals, imports, webhooks, tills, staff, audit log (staff login)</li>
  <li><a href="/admin/outbox">Mail outbox &middot; Postausgang</a>: sign-in codes when no SMTP
      server is configured (owner login)</li>
</ul>
<h2>Developers</h2>
<ul>
  <li><a href="/schema/swagger">API documentation (Swagger UI)</a> &middot;
      <a href="/schema/openapi.json">OpenAPI document</a></li>
  <li><a href="/health">Liveness</a> &middot; <a href="/ready">Readiness</a></li>
  <li>JSON API under <code>/api/v1</code>: send <code>Authorization: Bearer &lt;API key&gt;</code>
      and an <code>Idempotency-Key</code> header on every write.</li>
</ul>
</body>
</html>
"""


@get("/", media_type=MediaType.HTML, include_in_schema=False)
async def home(request: Request[Any, Any, Any]) -> str:
    """Links to every program's wallet (in development; a production front page names none)."""
    wallets = "  <li>Each program's wallet is at <code>/wallet/&lt;program id&gt;</code></li>"
    if request.app.state.settings.environment == "development":

        async def work(conn: Any) -> list[Any]:
            rows = await conn.execute(
                select(programs.c.id, programs.c.name).order_by(programs.c.id)
            )
            return list(rows)

        rows = await in_transaction(request.app.state.engine, work, read_only=True)
        if rows:
            wallets = "\n".join(
                f'  <li><a href="/wallet/{row.id}">Wallet &middot; {escape(row.name)}</a></li>'
                for row in rows
            )
    return _PAGE.format(wallets=wallets)
