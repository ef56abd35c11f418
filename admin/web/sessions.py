"""Signing staff in and out of the admin pages: a plain HTML form, a session cookie.

The cookie holds a staff session token like the admin API's bearer tokens (the database keeps only
its digest). It is HttpOnly (no script reads it), SameSite=Strict (no other site's link or form
sends it), Secure outside development, and lasts as long as the session. Each sign-in makes a new
session, so a token planted before sign-in is worth nothing afterwards. The forms post to this
site only; a post from another site is refused before the password is even looked at.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import MediaType, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, QueryParameter
from litestar.response import Redirect, Template

from admin.api.auth import STAFF_COOKIE, refuse_cross_site_write
from loyalty.app.settings import Settings
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.services.staff import MAX_EMAIL_LENGTH, MAX_PASSWORD_LENGTH, StaffDirectory

from .shell import (
    LOGIN_PATH,
    SECURITY_HEADERS,
    language_cookie,
    page_language,
    page_texts,
    safe_next,
)


class SignInForm(msgspec.Struct, frozen=True, kw_only=True):
    email: Annotated[str, msgspec.Meta(max_length=MAX_EMAIL_LENGTH)]
    password: Annotated[str, msgspec.Meta(max_length=MAX_PASSWORD_LENGTH)]
    next: Annotated[str, msgspec.Meta(max_length=2000)] = ""


def _sign_in_page(
    request: Request[Any, Any, Any], *, target: str, failed: bool, status_code: int = 200
) -> Template:
    language = page_language(request)
    return Template(
        template_name="admin/login.html",
        context={
            "t": page_texts(None, language),
            "lang": language,
            "other_lang": "en" if language == "de" else "de",
            "static": "/admin/static",
            "next": target,
            "failed": failed,
            "staff": None,
            "navigation": [],
            "title": page_texts(None, language)["sign_in_title"],
        },
        status_code=status_code,
        headers=SECURITY_HEADERS,
        media_type=MediaType.HTML,
        cookies=language_cookie(request, language),
    )


@get(LOGIN_PATH, include_in_schema=False)
async def sign_in_page(
    request: Request[Any, Any, Any],
    next_path: Annotated[
        str | None, QueryParameter(name="next", max_length=2000, required=False)
    ] = None,
) -> Template:
    return _sign_in_page(request, target=safe_next(next_path), failed=False)


@post("/admin/session", include_in_schema=False, status_code=303)
async def sign_in(
    request: Request[Any, Any, Any],
    staff_directory: NamedDependency[StaffDirectory],
    settings: NamedDependency[Settings],
    data: Annotated[SignInForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Response[Any]:
    refuse_cross_site_write(request)
    try:
        login = await staff_directory.login(data.email, data.password)
    except DomainError as error:
        if error.code is not ErrorCode.INVALID_CREDENTIALS:
            raise
        return _sign_in_page(request, target=safe_next(data.next), failed=True, status_code=401)
    cookie = Cookie(
        key=STAFF_COOKIE,
        value=login.token,
        path="/",
        httponly=True,
        secure=settings.environment != "development",
        samesite="strict",
        expires=int(login.expires_at.timestamp()),
    )
    return Redirect(safe_next(data.next), status_code=303, cookies=[cookie])


@post("/admin/session/end", include_in_schema=False, status_code=303)
async def sign_out(
    request: Request[Any, Any, Any],
    staff_directory: NamedDependency[StaffDirectory],
    settings: NamedDependency[Settings],
) -> Response[Any]:
    refuse_cross_site_write(request)
    token = request.cookies.get(STAFF_COOKIE)
    if token:
        await staff_directory.logout(token)
    cleared = Cookie(
        key=STAFF_COOKIE,
        value="",
        path="/",
        httponly=True,
        secure=settings.environment != "development",
        samesite="strict",
        max_age=0,
    )
    return Redirect(LOGIN_PATH, status_code=303, cookies=[cleared])


@get("/admin", include_in_schema=False)
async def admin_home() -> Redirect:
    return Redirect("/admin/analytics", status_code=303)


SESSION_HANDLERS = [sign_in_page, sign_in, sign_out, admin_home]
