"""Hypothesis strategies for baskets and partial returns of them."""

from __future__ import annotations

from hypothesis import strategies as st

from loyalty.domain.basket import LineKind
from loyalty.services.quotes import BasketDocument, BasketLineDocument

lines = st.lists(
    st.builds(
        dict,
        sku=st.sampled_from(["BROT", "MILCH", "KAFFEE"]),
        category=st.sampled_from(["bio", "drinks", None]),
        quantity=st.integers(1, 5),
        unit_price=st.integers(1, 2500),
        discount_share=st.integers(0, 100),
        kind=st.sampled_from([LineKind.MERCHANDISE, LineKind.MERCHANDISE, LineKind.GIFT_CARD]),
    ),
    min_size=1,
    max_size=5,
)


def basket_of(drawn: list[dict[str, object]]) -> BasketDocument:
    documents = []
    for index, line in enumerate(drawn):
        quantity, price = int(line["quantity"]), int(line["unit_price"])  # type: ignore[call-overload]
        documents.append(
            BasketLineDocument(
                line_id=str(index + 1),
                sku=str(line["sku"]),
                category=line["category"],  # type: ignore[arg-type]
                quantity=quantity,
                unit_price=price,
                line_discount=quantity * price * int(line["discount_share"]) // 100,  # type: ignore[call-overload]
                kind=line["kind"],  # type: ignore[arg-type]
            )
        )
    return BasketDocument(currency="EUR", lines=documents, location="berlin")


@st.composite
def orders_and_returns(draw: st.DrawFn) -> tuple[BasketDocument, list[dict[str, int]]]:
    basket = basket_of(draw(lines))
    steps: list[dict[str, int]] = []
    for line in basket.lines:
        total = draw(st.integers(0, line.quantity))
        while total:
            units = draw(st.integers(1, total))
            at = draw(st.integers(0, len(steps)))
            if at == len(steps):
                steps.append({})
            steps[at][line.line_id] = steps[at].get(line.line_id, 0) + units
            total -= units
    return basket, steps
