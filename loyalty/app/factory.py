"""The Litestar application factory: ``create_app()`` serves the whole platform."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from functools import partial
from importlib.resources import files
from pathlib import Path

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig, SQLAlchemyPlugin
from litestar import Litestar
from litestar.channels import ChannelsPlugin
from litestar.channels.backends.memory import MemoryChannelsBackend
from litestar.channels.backends.redis import RedisChannelsPubSubBackend
from litestar.config.app import AppConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.stores.memory import MemoryStore
from litestar.stores.redis import RedisStore
from litestar.stores.registry import StoreRegistry
from litestar.template.config import TemplateConfig
from redis.asyncio import Redis

from admin.api import STAFF_TOKEN_SCHEME, admin_router
from admin.web import TEMPLATE_DIR as ADMIN_TEMPLATES
from admin.web import admin_pages_router
from loyalty import __version__
from loyalty.db.balance_changes import listen
from loyalty.db.engine import create_engine
from loyalty.services.context import utc_now
from loyalty.services.expiry import run_expiry_sweep
from loyalty.services.feedback import Feedback
from loyalty.services.ledger import Ledger
from loyalty.services.member_cards import forget_used_codes
from loyalty.services.member_enrollment import Enrollment
from loyalty.services.member_privacy import MemberPrivacy
from loyalty.services.member_sign_in import MemberSignIn
from loyalty.services.orders import Orders
from loyalty.services.outbox import Outbox, SmtpServer
from loyalty.services.pos import PointOfSale
from loyalty.services.programs import Programs
from loyalty.services.queries import Queries
from loyalty.services.referrals import Referrals
from loyalty.services.rewards import Rewards
from loyalty.services.rule_sets import RuleSets
from loyalty.services.secret_box import SecretBox
from loyalty.services.staff import StaffDirectory
from loyalty.services.terminals import Terminals
from loyalty.services.tier_status import recalc_tiers
from loyalty.services.tiers import Tiers
from loyalty.services.vendor_connections import VendorConnections
from loyalty.services.vendor_messages import VendorMessages
from pos_adapter.api import pos_router
from pos_adapter.cashier import cashier_router
from pos_adapter.vendor_routes import vendor_router
from pos_adapter.vendors import VENDORS
from wallet.api import wallet_api_router
from wallet.live import publish_balances
from wallet.mail_texts import sign_in_mail
from wallet.pages import TEMPLATE_DIR as WALLET_TEMPLATES
from wallet.pages import wallet_pages_router
from wallet.passes_api import apple_pass_updates, apple_web_service_router

from .api import api_router
from .health import HealthController
from .home import home
from .problems import EXCEPTION_HANDLERS
from .rate_limits import POS_RATE_LIMIT_STORE, RateLimiter, rate_limited
from .settings import Settings

log = logging.getLogger("loyalty.app")

SWAGGER_ASSETS = "/static/swagger-ui"
#: Swagger UI 5 as shipped by swagger-ui-py, served by this app (no CDN).
SWAGGER_FAVICON = f"<link rel='icon' type='image/png' href='{SWAGGER_ASSETS}/favicon-32x32.png'>"
SWAGGER_UI_DIRECTORY = Path(str(files("swagger_ui") / "static"))


def create_app(
    settings: Settings | None = None, *, clock: Callable[[], datetime] = utc_now
) -> Litestar:
    settings = settings or Settings.from_env()
    engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
    redis_client = Redis.from_url(settings.redis_url) if settings.redis_url else None

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        ledger = Ledger(engine, clock=clock)
        app.state.update(
            settings=settings,
            engine=engine,
            redis=redis_client,
            ledger=ledger,
            programs=Programs(ledger.executor),
            queries=Queries(engine),
            rewards=Rewards(ledger),
            orders=Orders(ledger),
            tiers=Tiers(engine, clock=clock),
            rule_sets=RuleSets(engine, clock=clock),
            staff_directory=StaffDirectory(engine, clock=clock),
            terminals=Terminals(engine, clock=clock),
            vendor_connections=VendorConnections(
                engine,
                SecretBox(settings.secret_key.encode()),
                {name: not adapter.signs for name, adapter in VENDORS.items()},
                clock=clock,
            ),
            vendor_messages=VendorMessages(engine, clock=clock),
            outbox=Outbox(
                engine,
                SmtpServer.from_url(settings.smtp_url, settings.mail_from)
                if settings.smtp_url
                else None,
                clock=clock,
            ),
        )
        app.state.member_sign_in = MemberSignIn(
            engine, settings.secret_key.encode(), sign_in_mail, clock=clock
        )
        app.state.enrollment = Enrollment(engine, app.state.member_sign_in, clock=clock)
        app.state.referrals = Referrals(engine, clock=clock)
        app.state.feedback = Feedback(engine, clock=clock)
        app.state.member_privacy = MemberPrivacy(engine, clock=clock)
        app.state.pos = PointOfSale(
            ledger, app.state.orders, app.state.rewards, settings.secret_key.encode()
        )
        # Wallets that are open hear of their member's new balance (wallet/live.py).
        stop_announcing = listen(engine, partial(publish_balances, channels))
        sweeper = None
        if settings.sweep_interval_seconds > 0:
            sweeper = asyncio.create_task(_sweep_forever(app, settings.sweep_interval_seconds))
        try:
            yield
        finally:
            stop_announcing()
            if sweeper is not None:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
            if redis_client is not None:
                await redis_client.aclose()
            # The SQLAlchemy plugin disposes only the first app's engine of a process.
            await engine.dispose()

    def settings_on_app(app_config: AppConfig) -> AppConfig:
        app_config.state.update(settings=settings, engine=engine, redis=redis_client)
        return app_config

    stores = (
        StoreRegistry(default_factory=lambda name: RedisStore(redis_client, namespace=name))
        if redis_client is not None
        else StoreRegistry(default_factory=lambda _name: MemoryStore())
    )
    pos_limits = RateLimiter(
        stores.get(POS_RATE_LIMIT_STORE), per_minute=settings.pos_rate_limit, clock=clock
    )

    channels = ChannelsPlugin(
        backend=RedisChannelsPubSubBackend(redis=redis_client)
        if redis_client is not None
        else MemoryChannelsBackend(),
        arbitrary_channels_allowed=True,
    )

    return Litestar(
        route_handlers=[
            home,
            HealthController,
            api_router(),
            admin_router(),
            rate_limited(pos_router(), pos_limits),
            vendor_router(),
            wallet_api_router(),
            apple_web_service_router(),
            wallet_pages_router(),
            admin_pages_router(),
            cashier_router(),
            create_static_files_router(
                path=SWAGGER_ASSETS, directories=[SWAGGER_UI_DIRECTORY], include_in_schema=False
            ),
        ],
        plugins=[
            channels,
            SQLAlchemyPlugin(
                config=SQLAlchemyAsyncConfig(
                    engine_instance=engine,
                    create_all=False,
                    engine_dependency_key="db_engine",
                    session_dependency_key="db_session",
                )
            ),
        ],
        lifespan=[lifespan, apple_pass_updates],  # Apple Wallet passes kept up to date
        on_app_init=[settings_on_app],
        stores=stores,
        template_config=TemplateConfig(
            directory=[WALLET_TEMPLATES, ADMIN_TEMPLATES], engine=JinjaTemplateEngine
        ),
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=OpenAPIConfig(
            title="loyalty API",
            version=__version__,
            description=(
                "Ledger-based loyalty points. Errors are application/problem+json with a "
                "stable `code`. Every write of the ledger API needs an `Idempotency-Key` "
                "header. The admin API (/api/v1/admin) takes a staff session token from "
                "`POST /api/v1/admin/login` instead of an API key."
            ),
            path="/schema",
            render_plugins=[
                SwaggerRenderPlugin(
                    path="/swagger",
                    js_url=f"{SWAGGER_ASSETS}/swagger-ui-bundle.js",
                    css_url=f"{SWAGGER_ASSETS}/swagger-ui.css",
                    standalone_preset_js_url=f"{SWAGGER_ASSETS}/swagger-ui-standalone-preset.js",
                    favicon=SWAGGER_FAVICON,
                )
            ],
            components=Components(
                security_schemes={
                    "BearerToken": SecurityScheme(
                        type="http", scheme="bearer", description="The API client's key"
                    ),
                    "WalletCookie": SecurityScheme(
                        type="apiKey",
                        name="loyalty_wallet",
                        security_scheme_in="cookie",
                        description="A member's wallet session, set by signing in",
                    ),
                    STAFF_TOKEN_SCHEME: SecurityScheme(
                        type="http",
                        scheme="bearer",
                        description=(
                            "A staff session token from POST /api/v1/admin/login "
                            "(valid for 12 hours, until logout)"
                        ),
                    ),
                }
            ),
        ),
        debug=False,
    )


async def _sweep_forever(app: Litestar, interval: float) -> None:
    """Release stale holds, expire due points and apply due tier reviews on a timer, so that no
    deployment needs a cron job for them. Safe in several processes at once: each job locks what
    it changes and a second run finds nothing left to do."""
    while True:
        await asyncio.sleep(interval)
        try:
            swept = await run_expiry_sweep(app.state.engine)
            if swept.accounts:
                log.info("%s", swept)
            reviewed = await recalc_tiers(app.state.engine, app.state.ledger.clock())
            if reviewed.accounts:
                log.info("%s", reviewed)
            await forget_used_codes(app.state.engine, app.state.ledger.clock())
            await app.state.outbox.deliver_pending()
        except Exception:
            log.exception("background sweep failed; retrying in %.0f s", interval)
