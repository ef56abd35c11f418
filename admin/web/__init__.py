"""The back-office pages under /admin: server-rendered, German and English, strict CSP.

Staff sign in at ``/admin/login`` (the demo's owner after ``make run``); :mod:`admin.web.shell`
holds what every page shares. Pages read through the services and act through the admin API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from litestar import Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.static_files import create_static_files_router

from loyalty.app.dependencies import (
    provide_programs,
    provide_queries,
    provide_rule_sets,
    provide_staff_directory,
    provide_tiers,
)
from loyalty.app.settings import Settings
from loyalty.domain.errors import DomainError

from .analytics import ANALYTICS_PAGES
from .imports import IMPORT_PAGES
from .members import MEMBER_PAGES
from .operations import OPERATION_PAGES
from .program_pages import PROGRAM_PAGES
from .sessions import SESSION_HANDLERS
from .shell import (
    STATIC_PATH,
    NoBackOfficeError,
    SignInRequiredError,
    no_back_office_page,
    page_error,
    provide_page_staff,
    sign_in_redirect,
)
from .webhooks import WEBHOOK_PAGES

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
TEMPLATE_DIR: Final = Path(__file__).resolve().parent / "templates"


def _provide_settings(state: State) -> Settings:
    settings: Settings = state.settings
    return settings


def admin_pages_router() -> Router:
    """Every page of the back office. A page handler gets ``staff`` (the signed-in staff user,
    see :mod:`admin.web.shell`) and the services below by name."""
    return Router(
        path="/",
        route_handlers=[
            *SESSION_HANDLERS,
            *ANALYTICS_PAGES,
            *OPERATION_PAGES,
            *PROGRAM_PAGES,
            *MEMBER_PAGES,
            *IMPORT_PAGES,
            *WEBHOOK_PAGES,
            create_static_files_router(
                path=STATIC_PATH, directories=[STATIC_DIR], include_in_schema=False
            ),
        ],
        dependencies={
            "staff": Provide(provide_page_staff),
            "staff_directory": Provide(provide_staff_directory, sync_to_thread=False),
            "settings": Provide(_provide_settings, sync_to_thread=False),
            "programs": Provide(provide_programs, sync_to_thread=False),
            "queries": Provide(provide_queries, sync_to_thread=False),
            "rule_sets": Provide(provide_rule_sets, sync_to_thread=False),
            "tiers": Provide(provide_tiers, sync_to_thread=False),
        },
        exception_handlers={
            SignInRequiredError: sign_in_redirect,
            NoBackOfficeError: no_back_office_page,
            DomainError: page_error,
        },
    )
