"""A signed-in staff user of the shop, talking to the admin API (/api/v1/admin)."""

from __future__ import annotations

from functools import partial
from typing import Any

from .conftest import Stack

ADMIN = "/api/v1/admin"
OWNER_EMAIL = "chefin@sonnenschein.example"
OWNER_PASSWORD = "a long and secret passphrase"


class Manager:
    def __init__(
        self,
        stack: Stack,
        role: str = "owner",
        *,
        email: str = OWNER_EMAIL,
        display_name: str = "Chefin",
    ) -> None:
        self.client = stack.client
        self.email = email
        directory = stack.app.state.staff_directory
        stack.run(
            partial(
                directory.provision_staff,
                stack.shop.merchant_id,
                email=email,
                password=OWNER_PASSWORD,
                role=role,
                display_name=display_name,
            )
        )
        self.login()

    def login(self) -> None:
        """Sessions last 12 hours: the test logs in again after moving the clock."""
        login = self.client.post(
            f"{ADMIN}/login", json={"email": self.email, "password": OWNER_PASSWORD}
        )
        assert login.status_code == 200, login.text
        self.headers = {"Authorization": f"Bearer {login.json()['token']}"}

    def call(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        response = self.client.request(method, f"{ADMIN}{path}", json=body, headers=self.headers)
        assert response.status_code == status, response.text
        return response.json() if response.content else None
