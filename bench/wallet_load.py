"""Signed-in wallet members for the wallet home page load.

Sessions are made the way a member makes one: ``MemberSignIn.request_code`` mails a code to the
member's address and ``sign_in_with_code`` trades it for a session. The mail's text is written
by a callback the service is given; here that callback keeps the code instead of a person
reading it from their inbox. Nothing is forged: the session rows, their digests and the
cookie's token are the service's own.
"""

from __future__ import annotations

from sqlalchemy import select

from loyalty.db.engine import create_engine
from loyalty.db.tables import accounts, members
from loyalty.services.member_sign_in import MailText, MemberSignIn


async def sign_in_members(
    database_url: str, *, secret_key: str, program_id: int, count: int
) -> list[str]:
    """Session tokens (the wallet cookie's value) of ``count`` members of the program that
    have an email address, the first ones by member id."""
    engine = create_engine(database_url, pool_size=2)
    codes: list[str] = []

    def keep_code(
        code: str, link: str, program_name: str, locale: str | None, purpose: str
    ) -> MailText:
        codes.append(code)
        return MailText(subject="sign-in code", body=f"{code} {link}")

    try:
        async with engine.connect() as conn:
            addresses = list(
                await conn.scalars(
                    select(members.c.email)
                    .join(accounts, accounts.c.member_id == members.c.id)
                    .where(
                        accounts.c.program_id == program_id,
                        members.c.email.is_not(None),
                        members.c.deleted_at.is_(None),
                    )
                    .order_by(members.c.id)
                    .limit(count)
                )
            )
        if not addresses:
            raise RuntimeError("no member of the program has an email address to sign in with")
        sign_in = MemberSignIn(engine, secret_key.encode(), keep_code)
        tokens = []
        for address in addresses:
            codes.clear()
            await sign_in.request_code(program_id, address, "http://bench.invalid/?token=")
            if len(codes) != 1:
                raise RuntimeError(f"requesting a code for {address} mailed {len(codes)} codes")
            session = await sign_in.sign_in_with_code(program_id, address, codes[0])
            tokens.append(session.token)
        return tokens
    finally:
        await engine.dispose()
