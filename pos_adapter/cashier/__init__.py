"""The built-in cashier page at ``/pos`` for shops without an integrated POS.

A server-rendered HTML shell (Jinja2, German or English) plus one static script and one
stylesheet under ``/pos/static/``; no inline script or style, so the page runs under a
Content-Security-Policy with ``script-src 'self'``. The script talks to the canonical terminal
REST API (``/api/v1/pos/...``) with the terminal key or a staff token kept in the browser. The QR
decoder for camera scanning in browsers without BarcodeDetector (``static/vendor/jsQR.js``) is
served from there too; the script loads it the first time the camera is used.

Mount with ``route_handlers=[..., cashier_router()]``.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any, Final

from jinja2 import Environment, FileSystemLoader, Template
from litestar import Request, Response, Router, get
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router

from loyalty.app.languages import pick_language as best_language

from .i18n import LANGUAGES, STRINGS, Language

__all__ = ["CONTENT_SECURITY_POLICY", "cashier_router", "pick_language"]

PACKAGE_DIR: Final = Path(__file__).resolve().parent
STATIC_DIR: Final = PACKAGE_DIR / "static"
TEMPLATE_DIR: Final = PACKAGE_DIR / "templates"

PAGE_PATH: Final = "/pos"
STATIC_PATH: Final = "/pos/static"
API_BASE: Final = "/api/v1"
#: The camera's QR decoder where the browser has no BarcodeDetector (see static/vendor/README.md).
QR_DECODER: Final = "vendor/jsQR.js"

#: What the page needs and nothing more: own scripts and styles only, the API on the same
#: origin, the camera stream for scanning (decoded by BarcodeDetector or the vendored jsQR, plain
#: JavaScript on a canvas: no eval, no WebAssembly, no worker).
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob: mediastream:; connect-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def pick_language(query: str | None, accept_language: str | None) -> Language:
    """``?lang=de|en`` first, then the best of German and English in Accept-Language
    (q-values respected, earlier wins a tie), else German."""
    return best_language(query, accept_language=accept_language)


@cache
def _template() -> Template:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR), autoescape=True, auto_reload=False
    )
    return environment.get_template("cashier.html")


@cache
def _static_url(name: str) -> str:
    """The file's URL with a content hash, so a till never runs yesterday's script."""
    digest = hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]
    return f"{STATIC_PATH}/{name}?v={digest}"


@cache
def _strings_json(language: Language) -> str:
    return json.dumps(STRINGS[language], ensure_ascii=False, separators=(",", ":"))


def render_page(language: Language) -> str:
    return _template().render(
        lang=language,
        t=STRINGS[language],
        strings_json=_strings_json(language),
        languages=LANGUAGES,
        api_base=API_BASE,
        js_url=_static_url("cashier.js"),
        css_url=_static_url("cashier.css"),
        qr_decoder_url=_static_url(QR_DECODER),
    )


@get(
    PAGE_PATH,
    include_in_schema=False,
    sync_to_thread=False,
    name="cashier_page",
    cache_control=CacheControlHeader(no_cache=True),
)
def cashier_page(request: Request[Any, Any, Any]) -> Response[str]:
    # Read by hand: an unknown ?lang= falls back to the header instead of answering 400.
    language = pick_language(
        request.query_params.get("lang"), request.headers.get("accept-language")
    )
    return Response(
        render_page(language),
        media_type="text/html",
        headers={
            "Content-Language": language,
            "Vary": "Accept-Language",
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
        },
    )


def cashier_router() -> Router:
    """``GET /pos`` (the page) and ``/pos/static/...`` (its script, stylesheet, QR decoder)."""
    static = create_static_files_router(
        path=STATIC_PATH,
        directories=[STATIC_DIR],
        name="cashier_static",
        include_in_schema=False,
        # URLs carry a content hash (?v=...); an hour keeps unversioned fetches fresh enough.
        cache_control=CacheControlHeader(max_age=3600),
    )
    return Router(path="/", route_handlers=[cashier_page, static])
