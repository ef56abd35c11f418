"""The member's own data in the wallet's JSON API (DSGVO/GDPR): the profile, a download of all
their data (JSON, or a ZIP of CSV files) and the deletion of their account.

Every route acts for the member of the session cookie (``member_guard``): there is no member id
in any path, so a member can read and erase only themselves. Downloads are attachments that no
cache may keep (``Cache-Control: no-store``). Erasing needs the word ``LÖSCHEN`` or ``DELETE`` in
the body, so that a stray click or a replayed request cannot delete an account, and ends the
session like signing out. What is exported, erased and kept: docs/WALLET.md and
``loyalty.services.member_privacy``.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, MediaType, Request, Response, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody

from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.services.member_privacy import Erased, MemberPrivacy, MemberProfile, csv_archive
from loyalty.services.member_sign_in import WalletMember

from .api import ProgramId, member_guard, provide_member, signed_out

#: The words that confirm an erasure (either language; any letter case).
CONFIRM_WORDS = frozenset({"LÖSCHEN", "DELETE"})
ZIP_MEDIA_TYPE = "application/zip"


class ProfileChange(msgspec.Struct, forbid_unknown_fields=True):
    """Fields left out stay as they are; ``null`` clears the phone or the language. The email
    address cannot be changed here."""

    display_name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    phone: Annotated[str, msgspec.Meta(max_length=40)] | msgspec.UnsetType | None = msgspec.UNSET
    locale: Literal["de", "en"] | msgspec.UnsetType | None = msgspec.UNSET


class EraseRequest(msgspec.Struct, forbid_unknown_fields=True):
    #: ``LÖSCHEN`` or ``DELETE``: the member typed it to confirm.
    confirm: Annotated[str, msgspec.Meta(max_length=32, examples=["LÖSCHEN"])]


def provide_privacy(request: Request[Any, Any, Any]) -> MemberPrivacy:
    service: MemberPrivacy = request.app.state.member_privacy
    return service


def _download(content: bytes, media_type: str, filename: str) -> Response[bytes]:
    return Response(
        content=content,
        media_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


def _filename(member: WalletMember, at: datetime, suffix: str) -> str:
    return f"loyalty-member-{member.member_id}-{at:%Y-%m-%d}{suffix}"


def _confirmed(word: str) -> bool:
    return unicodedata.normalize("NFC", word).strip().upper() in CONFIRM_WORDS


class WalletPrivacyController(Controller):
    path = "/{program_id:int}"
    tags = ["Wallet"]
    guards = [member_guard]
    dependencies = {
        "member": Provide(provide_member, sync_to_thread=False),
        "privacy": Provide(provide_privacy, sync_to_thread=False),
    }

    @get(
        "/profile",
        summary="The member's personal data",
        description=(
            "Name, email, phone, language, card number, when the member joined and when their "
            "address was confirmed."
        ),
    )
    async def profile(
        self,
        program_id: ProgramId,
        member: NamedDependency[WalletMember],
        privacy: NamedDependency[MemberPrivacy],
    ) -> MemberProfile:
        return await privacy.profile(member.member_id, program_id)

    @patch(
        "/profile",
        summary="Change name, phone or language",
        description=(
            "Only the fields sent change; `null` clears the phone or the language. The phone is "
            "stored in international form. The email address is how the member signs in and "
            "cannot be changed here."
        ),
    )
    async def update_profile(
        self,
        program_id: ProgramId,
        member: NamedDependency[WalletMember],
        privacy: NamedDependency[MemberPrivacy],
        data: JSONBody[ProfileChange],
    ) -> MemberProfile:
        await privacy.update_profile(
            member.member_id,
            display_name=data.display_name,
            phone=data.phone,
            locale=data.locale,
        )
        return await privacy.profile(member.member_id, program_id)

    @get(
        "/export.json",
        media_type=MediaType.JSON,
        summary="Download all of the member's data as JSON",
        description=(
            "Everything stored about the member in all of the merchant's programs, as an "
            "attachment: profile, balances, points and their expiry, the ledger history, orders "
            "with their lines, returns, redemptions, till transactions, consents, tiers, "
            "sign-ins and the mail sent (not its text)."
        ),
        response_description="A MemberExport document, as an attachment",
    )
    async def export_json(
        self,
        program_id: ProgramId,
        member: NamedDependency[WalletMember],
        privacy: NamedDependency[MemberPrivacy],
    ) -> Response[bytes]:
        del program_id
        export = await privacy.export(member.member_id, member.merchant_id)
        return _download(
            msgspec.json.encode(export),
            "application/json",
            _filename(member, export.generated_at, ".json"),
        )

    @get(
        "/export.csv",
        media_type=ZIP_MEDIA_TYPE,
        summary="Download all of the member's data as CSV files (ZIP)",
        description=(
            "The same data as the JSON download, as a ZIP archive with one CSV file per section "
            "(UTF-8, header row first)."
        ),
        response_description="A ZIP archive of CSV files, as an attachment",
    )
    async def export_csv(
        self,
        program_id: ProgramId,
        member: NamedDependency[WalletMember],
        privacy: NamedDependency[MemberPrivacy],
    ) -> Response[bytes]:
        del program_id
        export = await privacy.export(member.member_id, member.merchant_id)
        return _download(
            csv_archive(export), ZIP_MEDIA_TYPE, _filename(member, export.generated_at, "-csv.zip")
        )

    @post(
        "/erase",
        status_code=200,
        summary="Delete the member's account and personal data",
        description=(
            'Needs `{"confirm": "LÖSCHEN"}` (or `"DELETE"`). Erases name, email, phone and card '
            "number, forfeits the remaining points, ends every session and clears the cookie. "
            "Purchases and the points ledger are kept without personal data."
        ),
    )
    async def erase(
        self,
        request: Request[Any, Any, Any],
        program_id: ProgramId,
        member: NamedDependency[WalletMember],
        privacy: NamedDependency[MemberPrivacy],
        data: JSONBody[EraseRequest],
    ) -> Response[Erased]:
        del program_id
        if not _confirmed(data.confirm):
            raise DomainError(
                ErrorCode.ERASURE_NOT_CONFIRMED,
                "type LÖSCHEN (or DELETE) to confirm that the account is to be deleted",
                field="confirm",
            )
        erased = await privacy.erase(
            member.member_id, member.merchant_id, request.app.state.ledger.clock()
        )
        return signed_out(request, erased)
