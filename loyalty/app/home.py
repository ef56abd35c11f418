"""The front page of a running instance: where everything is."""

from __future__ import annotations

from litestar import MediaType, get

HOME = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>loyalty</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 42rem; margin: 3rem auto;
         padding: 0 1rem; color: #1d2330; }
  h1 { font-size: 1.6rem; margin-bottom: .2rem; }
  p.lead { color: #4a5468; margin-top: 0; }
  ul { padding-left: 1.1rem; }
  li { margin: .4rem 0; }
  code { background: #f1f3f7; padding: .1rem .3rem; border-radius: 4px; }
  a { color: #0b57d0; }
</style>
</head>
<body>
<h1>loyalty</h1>
<p class="lead">Ledger-based loyalty points platform &middot; Treuepunkte-Plattform</p>
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


@get("/", media_type=MediaType.HTML, include_in_schema=False, sync_to_thread=False)
def home() -> str:
    return HOME
