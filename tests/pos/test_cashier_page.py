"""The cashier page at /pos: the HTML shell, its languages, its static files.

The browser end-to-end test against the terminal API comes with that API.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from pos_adapter.cashier import CONTENT_SECURITY_POLICY, cashier_router, pick_language
from pos_adapter.cashier.i18n import STRINGS

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[2] / "pos_adapter" / "cashier"


class Page(HTMLParser):
    """What the tests look at in the page: tags with their attributes, script contents."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._in_script: dict[str, str | None] | None = None
        self._script_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "script":
            self._in_script = attributes
            self._script_text = []

    def handle_data(self, data: str) -> None:
        if self._in_script is not None:
            self._script_text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._in_script is not None:
            self.scripts.append((self._in_script, "".join(self._script_text)))
            self._in_script = None

    def find(self, tag: str, **attributes: str) -> dict[str, str | None]:
        for name, attrs in self.tags:
            if name == tag and all(attrs.get(k) == v for k, v in attributes.items()):
                return attrs
        raise AssertionError(f"no <{tag} {attributes}> in the page")

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


@pytest.fixture
def client() -> Iterator[TestClient[Litestar]]:
    app = Litestar(route_handlers=[cashier_router()])
    with TestClient(app) as test_client:
        yield test_client


def test_german_by_default(client: TestClient[Litestar]) -> None:
    response = client.get("/pos")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-language"] == "de"
    page = parse(response.text)
    assert page.find("html")["lang"] == "de"
    body = page.find("body")
    assert body["data-lang"] == "de"
    assert json.loads(body["data-i18n"] or "") == STRINGS["de"]
    assert "Kundenkarte scannen" in response.text
    assert "Verkauf abschließen" in response.text


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("/pos?lang=en", {}),
        ("/pos?lang=en", {"Accept-Language": "de-DE,de;q=0.9"}),
        ("/pos", {"Accept-Language": "en-GB,en;q=0.9,de;q=0.5"}),
        ("/pos", {"Accept-Language": "fr-CH, en;q=0.8"}),
    ],
)
def test_english_by_query_or_header(
    client: TestClient[Litestar], url: str, headers: dict[str, str]
) -> None:
    response = client.get(url, headers=headers)
    assert response.status_code == 200
    page = parse(response.text)
    assert page.find("html")["lang"] == "en"
    assert json.loads(page.find("body")["data-i18n"] or "") == STRINGS["en"]
    assert "Scan the loyalty card" in response.text
    assert "Complete sale" in response.text


@pytest.mark.parametrize(
    ("query", "header", "expected"),
    [
        (None, None, "de"),
        (None, "", "de"),
        (None, "fr, it;q=0.5", "de"),
        (None, "en", "en"),
        (None, "de-CH", "de"),
        (None, "de-AT;q=0.4, en-US;q=0.9", "en"),
        (None, "en;q=0, de;q=0.1", "de"),
        (None, "en;q=bogus, de", "de"),
        (None, "*", "de"),
        ("de", "en", "de"),
        ("EN", None, "en"),
        ("fr", "en", "en"),
        ("", "en", "en"),
    ],
)
def test_pick_language(query: str | None, header: str | None, expected: str) -> None:
    assert pick_language(query, header) == expected


def test_language_switch_links_both_languages(client: TestClient[Litestar]) -> None:
    page = parse(client.get("/pos").text)
    links = {a.get("href") for a in page.all("a")}
    assert {"?lang=de", "?lang=en"} <= links
    assert page.find("a", href="?lang=de").get("aria-current") == "true"


def test_scan_input_has_autofocus(client: TestClient[Litestar]) -> None:
    page = parse(client.get("/pos").text)
    scan = page.find("input", id="scan")
    assert "autofocus" in scan
    assert scan["type"] == "text"
    # The scan field is in a form, so the Enter a keyboard-wedge scanner types submits it.
    assert page.find("form", id="form-scan") is not None


@pytest.mark.parametrize(("lang", "button"), [("de", "Neues Mitglied"), ("en", "New member")])
def test_new_member_dialog_asks_for_an_email_and_an_optional_name(
    client: TestClient[Litestar], lang: str, button: str
) -> None:
    response = client.get(f"/pos?lang={lang}")
    assert button in response.text
    page = parse(response.text)
    # The button sits in the card shown while no member is identified.
    ids = [attrs.get("id") for _, attrs in page.tags]
    assert ids.index("no-member") < ids.index("btn-enroll") < ids.index("rewards-box")
    assert page.find("button", id="btn-enroll")["type"] == "button"
    assert page.find("dialog", id="dlg-enroll")["aria-labelledby"] == "enroll-title"
    assert page.find("form", id="form-enroll") is not None
    email = page.find("input", id="enroll-email")
    assert (email["type"], "required" in email) == ("email", True)
    name = page.find("input", id="enroll-name")
    assert (name["type"], "required" in name) == ("text", False)
    assert page.find("label", **{"for": "enroll-email"}) is not None
    assert page.find("label", **{"for": "enroll-name"}) is not None


def test_no_inline_script_or_style(client: TestClient[Litestar]) -> None:
    response = client.get("/pos")
    page = parse(response.text)
    assert page.scripts, "the page loads its script"
    for attributes, text in page.scripts:
        assert attributes.get("src"), "every <script> has a src"
        assert not text.strip(), "no inline script content"
    assert not page.all("style")
    for _, attributes in page.tags:
        assert "style" not in attributes
        assert not any(name.startswith("on") for name in attributes), "no inline handlers"
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


def test_static_files_served_with_content_types(client: TestClient[Litestar]) -> None:
    page = parse(client.get("/pos").text)
    script = page.scripts[0][0]["src"] or ""
    stylesheet = page.find("link", rel="stylesheet")["href"] or ""
    assert script.startswith("/pos/static/cashier.js?v=")
    assert stylesheet.startswith("/pos/static/cashier.css?v=")

    js = client.get(script)
    assert js.status_code == 200
    assert js.headers["content-type"].split(";")[0] in {"text/javascript", "application/javascript"}
    assert js.text == (PACKAGE / "static" / "cashier.js").read_text(encoding="utf-8")

    css = client.get(stylesheet)
    assert css.status_code == 200
    assert css.headers["content-type"].split(";")[0] == "text/css"
    assert "#scan" in css.text

    assert client.get("/pos/static/missing.js").status_code == 404


def test_translations_have_the_same_keys() -> None:
    assert set(STRINGS) == {"de", "en"}
    assert set(STRINGS["de"]) == set(STRINGS["en"])
    for language, strings in STRINGS.items():
        for key, text in strings.items():
            assert text.strip(), f"{language}.{key} is empty"


def test_placeholders_match_between_languages() -> None:
    placeholder = re.compile(r"\{(\w+)\}")
    for key, german in STRINGS["de"].items():
        english = STRINGS["en"][key]
        assert set(placeholder.findall(german)) == set(placeholder.findall(english)), key


def test_every_string_the_page_uses_is_translated() -> None:
    template = (PACKAGE / "templates" / "cashier.html").read_text(encoding="utf-8")
    script = (PACKAGE / "static" / "cashier.js").read_text(encoding="utf-8")
    used = set(re.findall(r"\bt\.([a-z0-9_]+)", template))
    used |= set(re.findall(r"\bt\(\"([a-z0-9_]+)\"\s*[,)]", script))
    assert len(used) > 50
    assert used <= set(STRINGS["de"]), used - set(STRINGS["de"])


def test_member_names_are_escaped() -> None:
    # Strings reach the page through Jinja's autoescape, so a translation cannot break out of
    # the data attribute; the script writes API data with textContent only.
    script = (PACKAGE / "static" / "cashier.js").read_text(encoding="utf-8")
    assert "innerHTML" not in script
    assert "eval(" not in script
