"""The member wallet: the members' own side of the platform.

- ``wallet.api``: the wallet's JSON API (enrollment, passwordless sign-in, the member's session,
  rewards redeemed for vouchers, the live balance stream).
- ``wallet.pages``, ``wallet.views``, ``wallet.i18n``: the server-rendered pages, what they show
  and their German and English texts and formats; ``templates/`` and ``static/``.
- ``wallet.live``: new balances published to the open wallets (Litestar channels).
- ``wallet.mail_texts``: the wallet's mail to members.
- The card colours (``CardStyle``, checked for contrast) are the domain's:
  ``loyalty.domain.card_style``.
- ``wallet.card_images``: QR codes (PNG, SVG) of card numbers and rotating codes, and the
  printable membership card (PNG, SVG) with its QR code and Code 128 barcode.
- ``wallet.passes.apple``: Apple Wallet store cards (signed ``.pkpass`` archives) and the
  authentication tokens of the pass web service.
- ``wallet.passes.google``: Google Wallet loyalty classes and objects and the signed
  "save to Google Wallet" link.

Cards and passes are pure building blocks (no database, no HTTP). Their barcodes are always black
on white with a quiet zone of at least 4 modules (QR, error correction M) or 10 modules
(Code 128), whatever the program's colours (../shared/DESIGN.md section 6).
"""
