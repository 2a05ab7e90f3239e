"""Signing in to the console and being kept out without it."""

from __future__ import annotations

import re

from tests.browser.conftest import PASSWORD


def test_operator_signs_in_and_sees_the_scorecard(page, live_server, channel_manager) -> None:
    """The console sends a signed-out visitor to the sign-in page and back after it."""
    page.goto(f"{live_server.url}/dashboard/")
    assert "/accounts/login/" in page.url
    page.fill("#id_username", "manager")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/dashboard/$"))
    assert page.locator("h1").inner_text() == "Sync health"
    assert page.locator(".who").inner_text() == "manager"


def test_wrong_password_is_refused(page, live_server, channel_manager) -> None:
    """A wrong password leaves the visitor signed out on the sign-in page with an error."""
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "manager")
    page.fill("#id_password", "not-the-password")
    page.click("button[type=submit]")
    assert page.locator("[role=alert]").inner_text().startswith("Your username and password")
    page.goto(f"{live_server.url}/dashboard/")
    assert "/accounts/login/" in page.url


def test_sign_out_ends_the_session(logged_in_page, live_server) -> None:
    """After signing out, the console asks for the password again."""
    page = logged_in_page
    page.goto(f"{live_server.url}/dashboard/")
    assert page.locator("h1").inner_text() == "Sync health"
    page.click("form.signout button")
    page.wait_for_url(re.compile(r"/accounts/login/"))
    page.goto(f"{live_server.url}/dashboard/")
    assert "/accounts/login/" in page.url


def test_htmx_and_chart_library_are_served_locally(logged_in_page, live_server) -> None:
    """htmx and Chart.js come from the project's static files, not from another host."""
    page = logged_in_page
    page.goto(f"{live_server.url}/dashboard/")
    assert page.evaluate("typeof htmx") == "object"
    chart = page.request.get(f"{live_server.url}/static/vendor/chart.js-4.6.1/chart.umd.min.js")
    assert chart.ok
    assert "Chart.js v4.6.1" in chart.text()[:200]
