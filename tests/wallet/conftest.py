"""The wallet's tests run the app like the API tests do."""

from __future__ import annotations

from tests.app.conftest import any_stack as any_stack
from tests.app.conftest import clock as clock
from tests.app.conftest import stack as stack
from tests.app.conftest import stack_factory as stack_factory
