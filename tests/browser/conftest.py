"""Browser tests: real headless Chromium (Debian's ``chromium`` package) driven by
Playwright for Python against pytest-django's live server.

No browser is downloaded: Playwright launches the system's Chromium by path. ``make test``
installs the package when it is missing (the ``browser`` step of the Makefile).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from nventory import permissions

CHROMIUM_PATH = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
# Headless, no GPU, and nothing that would reach the network on its own (updates, sync,
# QUIC probes): the tests talk only to the live server.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "console-test-password"  # a test account's


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this package is a browser test (``-m "not browser"`` leaves them out)."""
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="package")
def browser_context(
    tmp_path_factory: pytest.TempPathFactory, django_db_setup, live_server
) -> Iterator[object]:
    """One Chromium for the browser tests, with a fresh user-data directory of its own.

    Started after the test database and the live server, so it is closed before them: no
    connection of the browser keeps a server thread (and its database session) alive.

    Playwright's synchronous API keeps an event loop running in the test's thread; the ORM
    calls a test makes between browser steps are synchronous and share nothing with it, so
    Django's async-safety guard is lifted while the browser runs, and only then (a process
    started by a later test must not inherit it: ``check --deploy`` refuses it).
    """
    if not Path(CHROMIUM_PATH).exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM_PATH}: run `make browser` "
            "(installs Debian's chromium package) or set CHROMIUM_PATH."
        )
    from playwright.sync_api import sync_playwright

    guard = pytest.MonkeyPatch()
    guard.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM_PATH,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 800},
        )
        # Generous: the machine running the suite may be busy with other tests' processes.
        context.set_default_timeout(30_000)
        try:
            yield context
        finally:
            context.close()
            guard.undo()


@pytest.fixture
def page(browser_context, live_server) -> Iterator[object]:
    """A fresh tab with no cookies (signed out), closed after the test."""
    browser_context.clear_cookies()
    tab = browser_context.new_page()
    try:
        yield tab
    finally:
        tab.close()


@pytest.fixture
def make_console_user(transactional_db) -> Callable[..., User]:
    """``make_console_user(username, *permission_names)``: an active user who may read
    everything the console shows (the ``view_`` permissions, as every role has) and holds
    the given permissions from ``nventory.permissions``."""

    def make(username: str, *granted: str) -> User:
        user = User.objects.create_user(username=username, password=PASSWORD)
        readable = Permission.objects.filter(
            content_type__app_label__in=permissions.READABLE_APPS, codename__startswith="view_"
        )
        user.user_permissions.add(*readable)
        for name in granted:
            app_label, codename = name.split(".")
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        return user

    return make


@pytest.fixture
def sign_in(page, live_server) -> Callable[[User], object]:
    """``sign_in(user)``: the tab carries that user's session (no trip through the form)."""

    def sign(user: User) -> object:
        client = Client()
        client.force_login(user)
        session_cookie = client.cookies["sessionid"]
        page.context.add_cookies(
            [{"name": "sessionid", "value": session_cookie.value, "url": live_server.url}]
        )
        return page

    return sign


@pytest.fixture
def channel_manager(make_console_user) -> User:
    """A user with the Channel manager role's permissions."""
    return make_console_user("manager", *permissions.ROLES[permissions.CHANNEL_MANAGER])


@pytest.fixture
def viewer(make_console_user) -> User:
    """A user who may read everything and change nothing."""
    return make_console_user("viewer")


@pytest.fixture
def logged_in_page(sign_in, channel_manager) -> object:
    """A tab signed in as the channel manager."""
    return sign_in(channel_manager)
