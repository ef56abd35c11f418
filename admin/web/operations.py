"""The back office's operations pages: staff users and roles, tills (terminals, their API keys
and POS vendor connections), the audit log and the mail outbox. Each page is a module of its
own; this one lists their handlers for the pages router."""

from __future__ import annotations

from typing import Final

from .audit_pages import AUDIT_PAGES
from .outbox_pages import OUTBOX_PAGES
from .staff_pages import STAFF_PAGES
from .terminal_pages import TERMINAL_PAGES

OPERATION_PAGES: Final = [*STAFF_PAGES, *TERMINAL_PAGES, *AUDIT_PAGES, *OUTBOX_PAGES]
