"""Examples for the OpenAPI document: a small bakery program a manager might write."""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal

from loyalty.domain.basket import LineKind
from loyalty.domain.earning import CapPeriod, PromotionKind, RuleKind
from loyalty.domain.tiers import DowngradePolicy, TierBasis, TierWindow
from loyalty.services.quotes import BasketDocument, BasketLineDocument
from loyalty.services.rule_documents import (
    AudienceDocument,
    CapDocument,
    EarningRuleDocument,
    HoursDocument,
    LocalizedText,
    PromotionDocument,
    RuleSetDocument,
    ScopeDocument,
    TierLevelDocument,
    TierPolicyDocument,
)
from loyalty.services.rule_sets import SampleOrder

EXAMPLE_RULE_SET = RuleSetDocument(
    earning_rules=[
        EarningRuleDocument(
            code="points-per-euro",
            kind=RuleKind.SPEND,
            name=LocalizedText(de="1 Punkt je Euro", en="1 point per euro"),
            points=1,
            per_amount=100,
        ),
        EarningRuleDocument(
            code="bio-double",
            kind=RuleKind.MULTIPLIER,
            name=LocalizedText(de="Bio doppelt", en="Organic counts double"),
            multiplier=Decimal(2),
            scope=ScopeDocument(categories=["bio"]),
        ),
    ],
    promotions=[
        PromotionDocument(
            code="saturday-morning",
            kind=PromotionKind.MULTIPLIER,
            name=LocalizedText(de="Samstagmorgen doppelt", en="Saturday mornings double"),
            starts_at=datetime(2026, 1, 1, tzinfo=UTC),
            ends_at=datetime(2027, 1, 1, tzinfo=UTC),
            multiplier=Decimal(2),
            weekdays=[6],
            hours=HoursDocument(start=time(7), end=time(11)),
            audience=AudienceDocument(locations=["berlin-mitte"]),
            budget_points=100_000,
        )
    ],
    caps=[CapDocument(period=CapPeriod.DAY, max_points=500)],
    tiers=TierPolicyDocument(
        levels=[
            TierLevelDocument(
                code="bronze", name=LocalizedText(de="Bronze", en="Bronze"), threshold=0
            ),
            TierLevelDocument(
                code="silver",
                name=LocalizedText(de="Silber", en="Silver"),
                threshold=500,
                multiplier=Decimal("1.25"),
            ),
            TierLevelDocument(
                code="gold",
                name=LocalizedText(de="Gold", en="Gold"),
                threshold=1500,
                multiplier=Decimal("1.5"),
                perks=LocalizedText(de="Kaffee gratis", en="Free coffee"),
            ),
        ],
        basis=TierBasis.POINTS,
        window=TierWindow.CALENDAR_YEAR,
        downgrade=DowngradePolicy.ONE_STEP,
        grace_days=30,
    ),
)

EXAMPLE_SAMPLES = [
    SampleOrder(
        basket=BasketDocument(
            currency="EUR",
            location="berlin-mitte",
            lines=[
                BasketLineDocument(
                    line_id="1", sku="BROT-500", category="bio", quantity=2, unit_price=349
                ),
                BasketLineDocument(
                    line_id="2",
                    sku="GUTSCHEIN-25",
                    quantity=1,
                    unit_price=2500,
                    kind=LineKind.GIFT_CARD,
                ),
            ],
        ),
        tier="silver",
        at=datetime(2026, 6, 13, 8, 30, tzinfo=UTC),
    )
]
