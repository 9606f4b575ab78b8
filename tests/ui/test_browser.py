"""The web app in a real headless Chromium against `klaxon up --demo`.

Starts the api, the worker and the web app on free ports in a temporary data dir, raises an
alert through the API, signs in as the demo operator, acknowledges that alert on the Triage
page and checks through the API that it is acknowledged. Then, signed in as the demo admin,
opens every page from the sidebar, measures how long each takes to finish loading (first visit
and a second one) and saves a screenshot of each. Screenshots and the timings go to
test-artifacts/browser/ (the test prints the path). Last, a reload keeps the operator signed
in (the signed session cookie), a forged cookie does not, and after signing out a reload shows
the login.

Chromium is Debian's (`make browser`), driven by Playwright with executable_path: no browser
download.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
START_TIMEOUT_S = 240  # the demo history is built on first start (about 30 s here)
PAGES = [  # (url path, heading), in the sidebar's order
    ("", "Overview"),
    ("triage", "Triage"),
    ("incidents", "Incidents"),
    ("silences", "Silences and maintenance"),
    ("rules", "Rules"),
    ("notifications", "Notifications"),
    ("analytics", "Analytics"),
    ("admin", "Administration"),
    ("account", "My account"),
]


@dataclass
class Stack:
    ui: str
    api: str
    passwords: dict[str, str]
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, deadline: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"klaxon up exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} did not answer within {START_TIMEOUT_S} s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: run `make browser` (Debian's chromium package)")
    data = tmp_path_factory.mktemp("browser-data")
    api_port, ui_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "KLAXON_DATA_DIR": str(data),
        "KLAXON_DATABASE_URL": f"sqlite:///{data / 'klaxon.db'}",
        "KLAXON_SECRET_KEY": "browser-test-secret-key-" + uuid.uuid4().hex,
    }
    log = data / "up.log"
    ports = ["--api-port", str(api_port), "--ui-port", str(ui_port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine", "up", "--demo", *ports],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        api, ui = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{ui_port}"
        _wait(f"{api}/health/ready", deadline, proc, log)
        _wait(f"{ui}/_stcore/health", deadline, proc, log)
        # The demo accounts, as `klaxon up --demo` prints them for the person who started it.
        found = re.findall(r"^\s+(\w+)\s+\S+@\S+\s+password: (\S+)$", log.read_text(), re.M)
        passwords = dict(found)
        assert {"admin", "operator"} <= set(passwords), log.read_text()[-4000:]
        yield Stack(ui=ui, api=api, passwords=passwords, log=log)
    finally:
        proc.send_signal(signal.SIGTERM)  # klaxon up stops its three children
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield chromium
        chromium.close()


# ---------------------------------------------------------------- driving Streamlit


BUSY = "[data-testid=stSkeleton], [data-testid=stSpinner], .stSpinner"


def settle(page: Any, timeout_s: float = 60) -> float:
    """Wait until the app's script run is over: no "running" indicator, no skeleton, and the
    same number of elements for a few polls in a row (a fragment or a rerun may follow).
    Returns when (perf_counter) the page last changed: the wait for quiet is not load time."""
    deadline = time.monotonic() + timeout_s
    quiet, last, changed_at = 0, -1, time.perf_counter()
    while time.monotonic() < deadline:
        state = page.locator("[data-testid=stApp]").get_attribute("data-test-script-state")
        busy = state not in ("notRunning", "initial") or page.locator(BUSY).count() > 0
        shown = page.locator("[data-testid=stElementContainer]").count()
        if busy == 0 and shown == last:
            quiet += 1
        else:
            quiet, changed_at = 0, time.perf_counter()
        last = shown
        if quiet >= 4:
            return changed_at
        page.wait_for_timeout(100)
    raise AssertionError(f"the page was still running after {timeout_s} s")


def problems(page: Any) -> list[str]:
    """Tracebacks and error messages on the page (there should be none)."""
    shown = page.locator("[data-testid=stException], [data-testid=stAlertContentError]")
    return [t.strip() for t in shown.all_inner_texts()]


def sign_in(browser: Any, stack: Stack, role: str) -> Any:
    context = browser.new_context(viewport={"width": 1440, "height": 1400})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(stack.ui)
    page.get_by_role("textbox", name="Email", exact=True).fill(f"{role}@example.com")
    page.get_by_role("textbox", name="Password", exact=True).fill(stack.passwords[role])
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("heading", name="Overview", exact=True).wait_for()
    settle(page)
    return page


def open_page(page: Any, url_path: str, heading: str) -> float:
    """Click the page in the sidebar; seconds until it has finished loading."""
    started = time.perf_counter()
    page.locator(f'[data-testid=stSidebarNav] a[href$="/{url_path}"]').click()
    page.wait_for_url(re.compile(rf"/{url_path}(\?.*)?$"))
    page.get_by_role("heading", name=heading, exact=True).wait_for()
    return settle(page) - started


def _api_token(stack: Stack, role: str) -> dict[str, str]:
    reply = httpx.post(
        f"{stack.api}/api/v1/auth/login",
        json={"email": f"{role}@example.com", "password": stack.passwords[role]},
    )
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def _raise_alert(stack: Stack, headers: dict[str, str], title: str) -> int:
    reply = httpx.post(  # a manual alert is an event: the worker makes the alert
        f"{stack.api}/api/v1/alerts",
        headers=headers,
        json={"title": title, "severity": "high", "service": "browser", "host": "chromium-1"},
    )
    assert reply.status_code == 202, reply.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the worker turns the event into an alert
        found = httpx.get(f"{stack.api}/api/v1/alerts", headers=headers, params={"q": title}).json()
        items = found.get("items") or found.get("alerts") or []
        if items:
            return int(items[0]["id"])
        time.sleep(0.3)
    raise AssertionError(f"the worker made no alert titled {title!r} within 60 s")


# ---------------------------------------------------------------- the tests


def test_an_operator_acknowledges_an_alert_in_the_browser(stack: Stack, browser: Any) -> None:
    headers = _api_token(stack, "operator")
    title = f"BrowserCheck{uuid.uuid4().hex[:8]}"
    alert_id = _raise_alert(stack, _api_token(stack, "admin"), title)  # ingest: not an operator's

    page = sign_in(browser, stack, "operator")
    try:
        _acknowledge_on_triage(page, alert_id, title)
    except Exception:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=ARTIFACTS / "failure-acknowledge.png", full_page=True)
        raise
    alert = httpx.get(f"{stack.api}/api/v1/alerts/{alert_id}", headers=headers).json()
    assert alert["status"] == "acknowledged", alert
    assert page.locator(".st-key-triage-ack button").is_disabled()  # nothing left to do
    page.context.close()


def _acknowledge_on_triage(page: Any, alert_id: int, title: str) -> None:
    open_page(page, "triage", "Triage")
    search = page.get_by_role("textbox", name="Search", exact=True)
    search.fill(title)
    search.press("Enter")
    page.get_by_text("Showing 1 of 1 alerts").wait_for()  # the search has been applied
    settle(page)
    page.get_by_role("combobox", name="Open an alert", exact=True).click()
    page.get_by_role("option", name=re.compile(rf"#{alert_id} · {title}")).click()
    settle(page)
    ack = page.locator(".st-key-triage-ack button")
    ack.click()
    page.get_by_text(f"Acknowledged alert #{alert_id}").wait_for()
    settle(page)
    assert not problems(page), problems(page)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / "triage-acknowledged.png", full_page=True)


def test_every_page_loads_and_is_photographed(stack: Stack, browser: Any) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    signed_out = browser.new_page(viewport={"width": 1440, "height": 1400})
    signed_out.goto(stack.ui)
    signed_out.get_by_role("button", name="Sign in", exact=True).wait_for()
    settle(signed_out)
    signed_out.screenshot(path=ARTIFACTS / "login.png", full_page=True)
    signed_out.close()

    page = sign_in(browser, stack, "admin")
    timings: dict[str, dict[str, float]] = {}
    for url_path, heading in [*PAGES[1:], PAGES[0]]:  # Overview last: we start on it
        name = url_path or "overview"
        first = open_page(page, url_path, heading)
        assert not problems(page), (name, problems(page))
        page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)
        timings[name] = {"first_s": round(first, 2)}
    for url_path, heading in PAGES:
        name = url_path or "overview"
        timings[name]["again_s"] = round(open_page(page, url_path, heading), 2)
    page.context.close()

    report = ARTIFACTS / "load-times.json"
    report.write_text(json.dumps(timings, indent=2) + "\n")
    print(f"\nscreenshots and load times: {ARTIFACTS}")
    for name, t in timings.items():
        print(f"  {name:<14} first {t['first_s']:5.2f} s   again {t['again_s']:5.2f} s")
    assert {p.name for p in ARTIFACTS.glob("*.png")} >= {f"{u or 'overview'}.png" for u, _ in PAGES}


def test_a_reload_keeps_the_user_signed_in_until_they_sign_out(stack: Stack, browser: Any) -> None:
    page = sign_in(browser, stack, "operator")
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert "klaxon_session" in cookies, cookies.keys()
    assert cookies["klaxon_session"]["sameSite"] == "Strict"
    assert cookies["klaxon_session"]["expires"] == -1  # gone when the browser closes

    open_page(page, "triage", "Triage")
    page.reload()  # a new Streamlit session: it continues the signed-in one
    page.get_by_role("heading", name="Triage", exact=True).wait_for()
    settle(page)
    assert page.locator("[data-testid=stSidebar]").get_by_text("operator@example.com").count()

    # A forged cookie (another user's id under the same session) is ignored.
    forged = page.context.new_page()
    value = cookies["klaxon_session"]["value"].split(".")
    page.context.add_cookies(
        [{**cookies["klaxon_session"], "value": ".".join([value[0], "1", *value[2:]])}]
    )
    forged.goto(stack.ui)
    forged.get_by_role("button", name="Sign in", exact=True).wait_for()
    forged.close()
    page.context.add_cookies([cookies["klaxon_session"]])

    page.locator("[data-testid=stSidebar]").get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Sign in", exact=True).wait_for()
    settle(page)
    assert "klaxon_session" not in {c["name"] for c in page.context.cookies()}
    page.reload()  # signed out stays signed out
    page.get_by_role("button", name="Sign in", exact=True).wait_for()
    page.context.close()
