"""The API tokens page in a browser: issue a token, use it, revoke it."""

from __future__ import annotations

import requests

from nventory import permissions


def test_an_administrator_issues_a_token_that_works_and_revokes_it(
    page, live_server, sign_in, make_console_user
) -> None:
    """The key shows once on the page, answers the API, and is refused after Revoke."""
    make_console_user("storefront", *permissions.ROLES[permissions.ORDER_CLIENT])
    administrator = make_console_user(
        "keeper", permissions.MANAGE_API_TOKENS, "accounts.view_apitoken"
    )
    sign_in(administrator)
    page.goto(f"{live_server.url}/dashboard/")
    page.click("nav >> text=API tokens")
    page.wait_for_url(f"{live_server.url}/dashboard/tokens/")

    page.select_option("#id_user", label="storefront")
    page.fill("#id_name", "checkout")
    page.fill("#id_expires_in_days", "7")
    page.click("form.issue-token button[type=submit]")
    key = page.locator("#issued-key-value").inner_text().strip()
    assert key.startswith("nvt_")

    def skus() -> int:
        return requests.get(
            f"{live_server.url}/api/v1/skus/",
            headers={"Authorization": f"Token {key}"},
            timeout=10,
        ).status_code

    assert skus() == 200
    page.goto(f"{live_server.url}/dashboard/tokens/")
    assert key not in page.content()
    row = page.locator("#tokens tbody tr", has_text="checkout")
    assert row.locator(".state").inner_text() == "active"
    page.on("dialog", lambda dialog: dialog.accept())
    row.locator("button", has_text="Revoke").click()
    page.locator("#tokens tbody tr", has_text="checkout").locator(
        ".state", has_text="revoked"
    ).wait_for()
    assert skus() == 401
