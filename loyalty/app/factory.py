"""The Litestar application factory: ``create_app()`` serves the whole platform."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from functools import partial
from importlib.resources import files
from pathlib import Path

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig, SQLAlchemyPlugin
from litestar import Litestar
from litestar.channels import ChannelsPlugin
from litestar.channels.backends.memory import MemoryChannelsBackend
from litestar.config.app import AppConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins import InitPluginProtocol
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.stores.memory import MemoryStore
from litestar.stores.redis import RedisStore
from litestar.stores.registry import StoreRegistry
from litestar.template.config import TemplateConfig
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from admin.api import STAFF_TOKEN_SCHEME, admin_router
from admin.web import TEMPLATE_DIR as ADMIN_TEMPLATES
from admin.web import admin_pages_router
from loyalty import __version__
from loyalty.db.balance_changes import listen
from loyalty.db.engine import create_engine
from loyalty.services.context import utc_now
from loyalty.services.expiry import run_expiry_sweep
from loyalty.services.feedback import Feedback
from loyalty.services.imports import Imports
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
from loyalty.services.webhook_dispatch import (
    WEBHOOK_INTERVAL_SECONDS,
    WEBHOOK_STOP_SECONDS,
    WebhookDispatcher,
)
from loyalty.services.webhooks import Webhooks
from pos_adapter.api import pos_router
from pos_adapter.cashier import cashier_router
from pos_adapter.vendor_routes import vendor_router
from pos_adapter.vendors import VENDORS
from wallet.api import wallet_api_router
from wallet.live import RedisBalanceChannels, publish_balances
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
#: Longest wait for Redis to connect or answer (it answers in well under a millisecond).
REDIS_TIMEOUT_SECONDS = 1.0

SWAGGER_ASSETS = "/static/swagger-ui"
#: Swagger UI 5 as shipped by swagger-ui-py, served by this app (no CDN).
SWAGGER_FAVICON = f"<link rel='icon' type='image/png' href='{SWAGGER_ASSETS}/favicon-32x32.png'>"
SWAGGER_UI_DIRECTORY = Path(str(files("swagger_ui") / "static"))


def create_app(
    settings: Settings | None = None, *, clock: Callable[[], datetime] = utc_now
) -> Litestar:
    settings = settings or Settings.from_env()
    engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
    # Once more on a new connection after a dropped one (a Redis restart or failover, an idle
    # timeout): without it each pooled connection failed its next command. And never wait
    # long: the tills' rate limit counts in Redis on every request and goes uncounted when
    # Redis fails, but a Redis that stopped answering held every till request for good.
    redis_client = (
        Redis.from_url(
            settings.redis_url,
            retry=Retry(NoBackoff(), 1),
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
        )
        if settings.redis_url
        else None
    )

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
            imports=Imports(engine, clock=clock),
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
        webhook_box = SecretBox(settings.secret_key.encode())
        app.state.webhook_dispatcher = WebhookDispatcher(engine, webhook_box, clock=clock)
        app.state.webhooks = Webhooks(
            engine,
            webhook_box,
            app.state.webhook_dispatcher,
            production=settings.environment == "production",
            clock=clock,
        )
        app.state.pos = PointOfSale(
            ledger, app.state.orders, app.state.rewards, settings.secret_key.encode()
        )
        # Wallets that are open hear of their member's new balance (wallet/live.py).
        stop_announcing = listen(engine, partial(publish_balances, channels))
        try:
            yield
        finally:
            stop_announcing()
            if redis_client is not None:
                await redis_client.aclose()
            # The SQLAlchemy plugin disposes only the first app's engine of a process.
            await engine.dispose()

    @contextlib.asynccontextmanager
    async def background_work(app: Litestar) -> AsyncIterator[None]:
        """The timers: the sweep, and webhook delivery on its own task and a shorter beat (a
        slow receiver must not hold up the sweep, and the first retry, after 30 s, needs a finer
        beat than the sweep's minute). Entered after every other lifespan, the database
        plugin's included (``_LastLifespan``), so left first: work under way finishes while the
        engine is still open (a task cancelled inside a transaction, or still running when the
        engine is disposed, leaves its connection to the garbage collector)."""
        tasks: list[asyncio.Task[None]] = []
        stop = asyncio.Event()
        interval = settings.sweep_interval_seconds
        if interval > 0:
            tasks.append(asyncio.create_task(_sweep_forever(app, interval, stop)))
            webhook_interval = min(WEBHOOK_INTERVAL_SECONDS, interval)
            tasks.append(
                asyncio.create_task(_deliver_webhooks_forever(app, webhook_interval, stop))
            )
        try:
            yield
        finally:
            stop.set()
            if tasks:
                await asyncio.wait(tasks, timeout=WEBHOOK_STOP_SECONDS)
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

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
        backend=RedisBalanceChannels(redis=redis_client)
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
            _LastLifespan(background_work),
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


class _LastLifespan(InitPluginProtocol):
    """Adds a lifespan after every other, the database plugin's included: entered last, left
    first. The database plugin adds the plugin that adds its lifespan only while it is being
    initialised, and Litestar initialises such added plugins after the listed ones; so this one
    adds itself as such a late plugin too, and only that adds the lifespan."""

    def __init__(
        self,
        manager: Callable[[Litestar], AbstractAsyncContextManager[None]],
        *,
        late: bool = False,
    ) -> None:
        self._manager = manager
        self._late = late

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        if self._late:
            app_config.lifespan.append(self._manager)
        else:
            app_config.plugins.append(_LastLifespan(self._manager, late=True))
        return app_config


async def _sweep_forever(app: Litestar, interval: float, stop: asyncio.Event) -> None:
    """Release stale holds, expire due points and apply due tier reviews on a timer, so that no
    deployment needs a cron job for them. Safe in several processes at once: each job locks what
    it changes and a second run finds nothing left to do. Ends between runs once ``stop`` is
    set."""
    while not await _stopped_within(stop, interval):
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


async def _deliver_webhooks_forever(app: Litestar, interval: float, stop: asyncio.Event) -> None:
    """Queue the events found since the last beat and send the webhook deliveries that are
    due (loyalty.services.webhook_dispatch): off every request's path, safe in several
    processes at once (they share the work through row locks). Ends between passes once
    ``stop`` is set."""
    while not await _stopped_within(stop, interval):
        try:
            result = await app.state.webhook_dispatcher.run_once()
            if result.found.queued or result.sent.attempted:
                log.info("%s", result)
        except Exception:
            log.exception("webhook delivery failed; retrying in %.0f s", interval)


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds``; True as soon as ``stop`` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()
