"""Layer 4, end to end: the web client nginx serves at `/`, driven in Debian's Chromium.

Two users in two browsers (one desktop-sized, one phone-sized) register, open a direct
chat, exchange messages, see their ticks turn to delivered and read and the typing
indicator; one goes offline (the browser's network cut through the DevTools protocol),
the other sends several messages, and when the first is back every message is there once,
in order. Then delete for everyone, a disappearing message, a token refresh and log out /
log in. Selenium drives /usr/bin/chromium through /usr/bin/chromedriver (both from
Debian: scripts/test.sh installs them); Selenium Manager is never asked to download.

Screenshots of each step go to .test-logs/web/; WHATSAPP_SAVE_SCREENSHOTS=1 also refreshes
the README's ones in docs/images/.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import LOG_DIR, ROOT
from PIL import Image
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait
from stack_client import ADDRESS, GROUP_VARS, PASSWORD, random_phone

pytestmark = pytest.mark.docker

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
BASE_URL = f"http://{ADDRESS}:{GROUP_VARS['nginx_http_port']}/"
SHOTS = LOG_DIR / "web"
DOC_IMAGES = ROOT / "docs" / "images"
WAIT_S = 20.0

# Every message bubble of the open conversation, in page order.
READ_MESSAGES = """
return [...document.querySelectorAll('#messages li.msg')].map(li => ({
  id: li.dataset.id || null,
  seq: Number(li.dataset.seq || 0),
  body: li.querySelector('.body').textContent,
  status: li.dataset.status,
  mine: li.classList.contains('mine'),
  disappearing: !li.querySelector('.timer').hidden,
  quote: li.querySelector('.quote').hidden ? null : li.querySelector('.quote').textContent,
  reactions: [...li.querySelectorAll('.reaction')].map(r => r.textContent),
  edited: !li.querySelector('.edited').hidden,
  thumb: (img => img && img.complete && img.naturalWidth
    ? [img.naturalWidth, img.naturalHeight] : null)(li.querySelector('.media img.thumb')),
}));
"""


class Browser:
    """One user's Chromium with the client open; waits are explicit (WebDriverWait)."""

    def __init__(self, name: str, width: int, height: int, *, phone: bool = False):
        self.name = name
        self.phone = random_phone()
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for arg in (
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--no-first-run",
            f"--window-size={width},{height}",
        ):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
        if phone:  # headless windows are 500 px wide at least: a phone's viewport instead
            self.driver.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": True},
            )
        self.driver.get(BASE_URL)

    # ---- helpers -------------------------------------------------------------------------
    def wait(self, condition: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
        return WebDriverWait(
            self.driver, timeout, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
        ).until(lambda _driver: condition(), message=f"{self.name}: {what}")

    def by_id(self, element_id: str):
        return self.driver.find_element(By.ID, element_id)

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def messages(self) -> list[dict[str, Any]]:
        return self.js(READ_MESSAGES)

    def message(self, body: str) -> dict[str, Any] | None:
        found = [m for m in self.messages() if m["body"] == body]
        return found[0] if found else None

    def connection(self) -> str:
        return self.by_id("connection-status").get_attribute("data-state")

    def shot(self, name: str, doc_name: str | None = None) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        self.driver.save_screenshot(str(path))
        if doc_name and os.environ.get("WHATSAPP_SAVE_SCREENSHOTS") == "1":
            DOC_IMAGES.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, DOC_IMAGES / doc_name)

    def console(self) -> list[dict[str, Any]]:
        try:
            return self.driver.get_log("browser")
        except WebDriverException:
            return []

    # ---- what a user does ------------------------------------------------------------------
    def register(self) -> None:
        self.by_id("show-register").click()
        self.by_id("register-name").send_keys(self.name)
        self.by_id("register-phone").send_keys(self.phone)
        self.by_id("register-password").send_keys(PASSWORD)
        self.by_id("register-button").click()
        self.wait(lambda: self.connection() == "online", "the socket is online after registering")
        assert self.by_id("me-name").text == self.name

    def log_in(self) -> None:
        self.by_id("login-phone").send_keys(self.phone)
        self.by_id("login-password").send_keys(PASSWORD + Keys.ENTER)
        self.wait(lambda: self.connection() == "online", "the socket is online after logging in")

    def save_contact(self, other: Browser) -> None:
        """What a phone's address book does: `other` becomes this user's contact (through the
        API, with this browser's own session), so this user's presence reaches `other`."""
        token = self.js("return JSON.parse(localStorage.getItem('whatsapp.session')).access_token")
        other_id = other.js("return JSON.parse(localStorage.getItem('whatsapp.session')).user.id")
        saved = requests.post(
            BASE_URL + "api/v1/contacts",
            json={"user_id": other_id},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert saved.status_code in (200, 201), saved.text

    def start_direct_chat(self, phone: str) -> None:
        self.by_id("new-chat-button").click()
        self.by_id("new-chat-phone").send_keys(phone + Keys.ENTER)
        self.wait(lambda: self.by_id("chat-body").is_displayed(), "the new conversation opens")

    def list_entry(self, title: str) -> dict[str, Any] | None:
        """The conversation list's entry with this title (read in one go: the list re-renders)."""
        return self.js(
            """
            const item = [...document.querySelectorAll('#conversation-list .conv')]
              .find(b => b.querySelector('.name').textContent === arguments[0]);
            if (!item) return null;
            const unread = item.querySelector('.unread');
            return {id: item.dataset.id, last: item.querySelector('.last').textContent,
                    unread: unread ? Number(unread.textContent) : 0};
            """,
            title,
        )

    def open_conversation(self, title: str) -> None:
        if self.by_id("chat-body").is_displayed() and self.by_id("chat-title").text == title:
            return  # open already
        back = self.by_id("back-button")
        if back.is_displayed():
            back.click()  # a phone shows the list or a chat, not both: to the list first

        def click() -> bool:
            # Found and clicked in one try: the list re-renders when a message arrives, and a
            # stale entry is looked up again (wait() retries StaleElementReferenceException).
            entry = self.list_entry(title)
            if entry:
                self.driver.find_element(By.CSS_SELECTOR, f'.conv[data-id="{entry["id"]}"]').click()
            return bool(entry)

        self.wait(click, f"{title} in the conversation list, clicked")
        self.wait(lambda: self.by_id("chat-title").text == title, f"the conversation with {title} opens")

    def bubble(self, body: str):
        """The message bubble with this body (an element, for clicking inside it)."""
        return self.wait(
            lambda: self.js(
                "return [...document.querySelectorAll('#messages li.msg')]"
                ".find(li => li.querySelector('.body').textContent === arguments[0]) || null",
                body,
            ),
            f"the message {body!r} is shown",
        )

    def type(self, text: str) -> None:
        self.by_id("message-input").send_keys(text)

    def send(self, text: str) -> None:
        self.type(text + Keys.ENTER)

    def set_offline(self, offline: bool) -> None:
        """The browser's network cut or back (DevTools protocol, like the Network panel)."""
        self.driver.execute_cdp_cmd("Network.enable", {})
        self.driver.execute_cdp_cmd(
            "Network.emulateNetworkConditions",
            {"offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
        )

    def quit(self) -> None:
        self.driver.quit()


@pytest.fixture(scope="module")
def browsers(deployed_stack) -> Iterator[tuple[Browser, Browser]]:
    assert deployed_stack[0].returncode == 0, "the deploy failed: see the deploy test"
    for binary in (CHROMIUM, CHROMEDRIVER):
        assert binary.is_file(), f"{binary} is missing: apt-get install chromium chromium-driver"
    assert requests.get(BASE_URL + "health", timeout=5).status_code == 200
    alice = Browser("Alice", 1280, 800)
    bob = Browser("Bob", 390, 844, phone=True)
    try:
        yield alice, bob
    finally:
        SHOTS.mkdir(parents=True, exist_ok=True)
        for b in (alice, bob):
            try:
                b.shot(f"{b.name.lower()}-last")
                (SHOTS / f"{b.name.lower()}-console.json").write_text(json.dumps(b.console(), indent=1))
            finally:
                b.quit()


def test_static_files_and_headers_of_the_client():
    """The page, its modules and stylesheet come from nginx with the CSP that keeps them in."""
    page = requests.get(BASE_URL, timeout=5)
    assert page.status_code == 200 and '<script type="module" src="/js/app.js">' in page.text
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    for path, kind in (("js/app.js", "javascript"), ("js/store.js", "javascript"), ("css/app.css", "css")):
        answer = requests.get(BASE_URL + path, timeout=5)
        assert answer.status_code == 200 and kind in answer.headers["Content-Type"], path


def test_two_users_chat_in_two_browsers(browsers):  # noqa: PLR0915 - one story, step by step
    alice, bob = browsers
    alice.wait(lambda: alice.by_id("login-form").is_displayed(), "the login form shows")
    alice.shot("01-login", "web-login.png")

    alice.register()
    bob.register()
    # Bob's last seen is for his contacts (the default): he has Alice's number.
    bob.save_contact(alice)

    # Alice starts a direct chat by Bob's number and writes first.
    alice.start_direct_chat(bob.phone)
    assert alice.by_id("chat-title").text == "Bob"
    alice.send("Hello Bob")
    alice.wait(
        lambda: (alice.message("Hello Bob") or {}).get("seq") == 1, "the first message is acked (seq 1)"
    )
    # Bob's client reports it delivered without opening the chat: two ticks for Alice.
    alice.wait(
        lambda: alice.message("Hello Bob")["status"] == "delivered", "Hello Bob turns delivered", timeout=30
    )

    # Bob's list: the conversation, its last message and one unread.
    bob.wait(
        lambda: (bob.list_entry("Alice") or {}).get("last") == "Hello Bob",
        "Bob's list shows the last message",
    )
    assert bob.list_entry("Alice")["unread"] == 1
    bob.shot("02-conversation-list", "web-conversation-list.png")

    bob.open_conversation("Alice")
    bob.wait(lambda: bob.message("Hello Bob") is not None, "Bob sees Hello Bob")
    assert bob.js("return document.body.dataset.view") == "chat"  # phone width: the list is hidden
    assert not bob.by_id("conversation-list").is_displayed()
    alice.wait(lambda: alice.message("Hello Bob")["status"] == "read", "Hello Bob turns read")
    alice.wait(lambda: alice.by_id("chat-status").text == "online", "Alice sees Bob online")

    # Typing: Bob types, Alice sees the indicator; sending clears it.
    bob.type("Hi Alice, ")
    alice.wait(lambda: alice.by_id("typing-indicator").is_displayed(), "Alice sees Bob typing")
    assert "typing" in alice.by_id("typing-indicator").text
    bob.send("nice to see you")
    alice.wait(lambda: alice.message("Hi Alice, nice to see you") is not None, "Alice gets Bob's reply")
    alice.wait(lambda: not alice.by_id("typing-indicator").is_displayed(), "the indicator goes away")
    bob.wait(lambda: bob.message("Hi Alice, nice to see you")["status"] == "read", "Bob's reply turns read")
    bob.shot("03-conversation-phone", "web-conversation-phone.png")

    # Bob loses the network; Alice goes on writing.
    bob.set_offline(True)
    bob.wait(lambda: bob.connection() == "offline", "Bob's client notices it is offline")
    away = [f"while you were away {n}" for n in range(1, 7)]
    for body in away:
        alice.send(body)
    alice.wait(
        lambda: all((alice.message(b) or {}).get("status") == "sent" for b in away),
        "Alice's messages are acked (one tick: Bob cannot have them)",
    )
    assert not any(bob.message(b) for b in away), "an offline browser showed new messages"
    bob.shot("04-offline")

    # Bob is back: every message once, in order, no gap; Alice sees them read.
    bob.set_offline(False)
    bob.wait(lambda: bob.connection() == "online", "Bob's client reconnects by itself", timeout=30)
    bob.wait(lambda: all(bob.message(b) for b in away), "Bob catches up", timeout=30)
    shown = bob.messages()
    bodies = [m["body"] for m in shown]
    assert bodies == ["Hello Bob", "Hi Alice, nice to see you", *away], bodies
    assert [m["seq"] for m in shown] == list(range(1, len(shown) + 1))
    assert len({m["id"] for m in shown}) == len(shown)
    alice.wait(lambda: all(alice.message(b)["status"] == "read" for b in away), "Alice's ticks turn read")

    # Delete for everyone: Bob's copy loses its text.
    victim = alice.message(away[2])["id"]
    alice.driver.find_element(By.CSS_SELECTOR, f'li.msg[data-id="{victim}"] button.delete').click()
    alice.wait(lambda: alice.by_id("delete-dialog").is_displayed(), "the delete dialog opens")
    alice.by_id("delete-confirm").click()
    bob.wait(
        lambda: any(m["id"] == victim and m["body"] == "This message was deleted" for m in bob.messages()),
        "Bob sees the message deleted",
    )
    assert bob.message(away[2]) is None

    # A disappearing message: shown with its timer on both sides, then gone from both.
    alice.driver.find_element(By.CSS_SELECTOR, '#ttl-select option[value="10"]').click()
    alice.send("this one vanishes")
    bob.wait(lambda: (bob.message("this one vanishes") or {}).get("disappearing"), "Bob gets the timed one")
    assert alice.message("this one vanishes")["disappearing"]
    alice.wait(lambda: (alice.message("this one vanishes") or {}).get("status") == "read", "it is read")
    alice.shot("05-conversation", "web-conversation.png")
    bob.wait(lambda: bob.message("this one vanishes") is None, "it disappears for Bob", timeout=30)
    alice.wait(lambda: alice.message("this one vanishes") is None, "it disappears for Alice", timeout=30)

    # A group by its members' numbers; on a phone, back to the list and into the group.
    alice.by_id("new-group-button").click()
    alice.by_id("new-group-name").send_keys("Team")
    alice.by_id("new-group-phones").send_keys(bob.phone)
    alice.by_id("new-group-create").click()
    alice.wait(lambda: alice.by_id("chat-title").text == "Team", "the new group opens")
    assert alice.by_id("ttl-select").get_attribute("value") == ""  # the timer was per chat
    alice.send("hello team")
    bob.by_id("back-button").click()
    bob.wait(lambda: bob.by_id("conversation-list").is_displayed(), "Bob is back on the list")
    bob.wait(
        lambda: (bob.list_entry("Team") or {}).get("last") == "Alice: hello team", "the group in Bob's list"
    )
    assert bob.list_entry("Team")["unread"] == 1
    bob.open_conversation("Team")
    bob.wait(lambda: bob.message("hello team") is not None, "Bob reads the group")
    assert bob.driver.find_element(By.CSS_SELECTOR, "#messages li.msg .sender").text == "Alice"
    alice.wait(lambda: alice.message("hello team")["status"] == "read", "the group message turns read")

    # A stale access token: the client refreshes (rotating the refresh token) and goes on.
    before = json.loads(bob.js("return localStorage.getItem('whatsapp.session')"))
    bob.js(
        "const s = JSON.parse(localStorage.getItem('whatsapp.session'));"
        "s.access_token = 'stale.token.here'; localStorage.setItem('whatsapp.session', JSON.stringify(s));"
    )
    bob.driver.refresh()
    bob.wait(lambda: bob.connection() == "online", "Bob is online again with a refreshed token")
    after = json.loads(bob.js("return localStorage.getItem('whatsapp.session')"))
    assert after["refresh_token"] != before["refresh_token"]
    assert after["access_token"] != "stale.token.here"  # noqa: S105 - the planted stale value
    spent = requests.post(
        BASE_URL + "api/v1/auth/refresh", json={"refresh_token": before["refresh_token"]}, timeout=10
    )
    assert spent.status_code == 401  # a spent refresh token is refused...

    # ...and its whole family revoked: Bob's next refresh fails and the client says so.
    bob.js(
        "const s = JSON.parse(localStorage.getItem('whatsapp.session'));"
        "s.access_token = 'stale.token.here'; localStorage.setItem('whatsapp.session', JSON.stringify(s));"
    )
    bob.driver.refresh()
    bob.wait(lambda: bob.by_id("login-form").is_displayed(), "the revoked session ends on the login form")
    assert "session has ended" in bob.by_id("auth-error").text
    bob.log_in()
    bob.wait(lambda: bob.list_entry("Alice") is not None, "the conversations are back after logging in")
    assert bob.list_entry("Team") is not None

    # Log out: the refresh token is revoked on the server and forgotten here.
    kept = json.loads(bob.js("return localStorage.getItem('whatsapp.session')"))
    bob.by_id("logout-button").click()
    bob.wait(lambda: bob.by_id("login-form").is_displayed(), "the login form after logging out")
    assert bob.js("return localStorage.getItem('whatsapp.session')") is None
    reused = requests.post(
        BASE_URL + "api/v1/auth/refresh", json={"refresh_token": kept["refresh_token"]}, timeout=10
    )
    assert reused.status_code == 401

    severe = [e for b in browsers for e in b.console() if e.get("level") == "SEVERE"]
    # The only errors allowed: the refused refresh and the socket of the revoked session.
    unexpected = [e for e in severe if "401" not in e.get("message", "") and "/ws" not in e["message"]]
    assert unexpected == [], unexpected


def test_a_second_browser_of_the_same_user_stays_in_step_and_logs_devices_out(browsers):
    """Alice on a second computer: the same conversations, the same new message in both
    browsers; from the second, her device list logs the first out (its page returns to the
    login form), then "Log out everywhere" ends the second too."""
    alice, bob = browsers
    laptop = Browser("Alice", 1280, 800)
    laptop.phone = alice.phone
    try:
        laptop.log_in()
        laptop.wait(
            lambda: laptop.list_entry("Bob") is not None, "Alice's conversations on her second computer"
        )
        bob.log_in()
        bob.open_conversation("Alice")
        bob.send("to both of Alice's browsers")
        for browser in (alice, laptop):
            browser.open_conversation("Bob")
            browser.wait(
                lambda b=browser: b.message("to both of Alice's browsers") is not None,
                f"{browser.name}'s browser shows Bob's new message",
            )

        laptop.by_id("sessions-button").click()
        rows = "return [...document.querySelectorAll('#sessions-list .session')].map(r => r.dataset)"
        listed = laptop.wait(lambda: len(laptop.js(rows)) >= 2 and laptop.js(rows), "her devices are listed")
        assert sum("current" in row for row in listed) == 1, listed
        names = laptop.js(
            "return [...document.querySelectorAll('#sessions-list .session-name')].map(n => n.textContent)"
        )
        assert all(name.endswith("(web)") for name in names), names  # named by the browser
        # Log the first computer out from the second: its page ends on the login form.
        laptop.driver.find_element(
            By.CSS_SELECTOR, "#sessions-list .session:not([data-current]) .session-logout"
        ).click()
        laptop.wait(lambda: len(laptop.js(rows)) == len(listed) - 1, "the device is gone from the list")
        alice.wait(
            lambda: alice.by_id("login-form").is_displayed(), "the logged-out browser shows the login form"
        )
        assert "session has ended" in alice.by_id("auth-error").text

        kept = json.loads(laptop.js("return localStorage.getItem('whatsapp.session')"))
        laptop.by_id("logout-all-button").click()
        laptop.wait(
            lambda: laptop.by_id("login-form").is_displayed(), "the login form after logging out everywhere"
        )
        assert "every device" in laptop.by_id("auth-error").text
        assert laptop.js("return localStorage.getItem('whatsapp.session')") is None
        refused = requests.post(
            BASE_URL + "api/v1/auth/refresh", json={"refresh_token": kept["refresh_token"]}, timeout=10
        )
        assert refused.status_code == 401
    finally:
        laptop.shot("alice-second-computer-last")
        laptop.quit()


def test_reply_react_and_edit_between_two_browsers(browsers):
    """Alice answers Bob by quoting his message, Bob reacts to her answer from the reaction
    picker, Alice corrects her answer; each step shows in the other browser live, and after
    a reload (from history) the quote, the reaction and the last body are still there."""
    alice, bob = browsers
    alice.log_in()
    alice.open_conversation("Bob")
    # The first test left this chat's timer at 10 seconds (kept per chat): this reply stays.
    alice.driver.find_element(By.CSS_SELECTOR, '#ttl-select option[value=""]').click()
    bob.open_conversation("Alice")
    bob.send("Which day suits you?")
    alice.bubble("Which day suits you?").find_element(By.CSS_SELECTOR, ".reply").click()
    alice.wait(lambda: alice.by_id("reply-banner").is_displayed(), "the reply banner above the message box")
    assert "Which day suits you?" in alice.by_id("reply-preview").text
    alice.send("Tuesday")
    assert not alice.by_id("reply-banner").is_displayed()  # one reply, then the box is plain again
    quoted = bob.wait(
        lambda: (m := bob.message("Tuesday")) and m["id"] and m["quote"] and m,
        "Bob sees Alice's reply quoting him",
    )
    assert quoted["quote"].endswith("Which day suits you?"), quoted

    answer = bob.bubble("Tuesday")
    answer.find_element(By.CSS_SELECTOR, ".react").click()
    answer.find_element(By.CSS_SELECTOR, '.pick[data-emoji="\U0001f44d"]').click()
    alice.wait(
        lambda: (alice.message("Tuesday") or {}).get("reactions") == ["\U0001f44d 1"],
        "Alice sees Bob's reaction",
    )

    alice.bubble("Tuesday").find_element(By.CSS_SELECTOR, ".edit").click()
    alice.wait(lambda: alice.by_id("edit-dialog").is_displayed(), "the edit dialog opens")
    alice.by_id("edit-input").clear()
    alice.by_id("edit-input").send_keys("Tuesday at ten")
    alice.by_id("edit-save").click()
    edited = bob.wait(lambda: bob.message("Tuesday at ten"), "Bob sees the edited body")
    assert edited["edited"] and edited["reactions"] == ["\U0001f44d 1"] and edited["quote"], edited
    assert bob.message("Tuesday") is None  # the old body is gone, not shown twice

    bob.driver.refresh()
    bob.wait(lambda: bob.connection() == "online", "Bob is online after the reload")
    bob.open_conversation("Alice")
    reloaded = bob.wait(lambda: bob.message("Tuesday at ten"), "the edited reply comes back from history")
    assert reloaded["edited"] and reloaded["reactions"] == ["\U0001f44d 1"], reloaded
    assert reloaded["quote"].endswith("Which day suits you?"), reloaded
    alice.shot("alice-reply-reaction-edit")


def test_a_photo_is_attached_with_a_preview_and_shown_by_its_thumbnail_in_both_browsers(browsers, tmp_path):
    """Alice attaches a photo (a preview above the box), sends it with a caption; the upload's
    bar fills, and both browsers show the photo by its 320-pixel thumbnail, live and after
    a reload."""
    alice, bob = browsers
    for browser in (alice, bob):
        if browser.by_id("login-phone").is_displayed():
            browser.log_in()
    alice.open_conversation("Bob")
    bob.open_conversation("Alice")
    photo = tmp_path / "holiday.png"
    Image.new("RGB", (1280, 640), (40, 120, 200)).save(photo)
    alice.by_id("attach-input").send_keys(str(photo))
    alice.wait(lambda: alice.by_id("attach-banner").is_displayed(), "the attachment banner with its preview")
    assert "holiday.png" in alice.by_id("attach-name").text
    assert alice.js("return document.getElementById('attach-preview').naturalWidth") == 1280
    alice.send("Greetings from the lake")
    alice.wait(
        lambda: not alice.by_id("attach-banner").is_displayed(), "the banner goes once the file is sent"
    )
    for browser in (alice, bob):
        shown = browser.wait(
            lambda b=browser: (m := b.message("Greetings from the lake")) and m["id"] and m["thumb"] and m,
            f"{browser.name} sees the photo's thumbnail",
        )
        assert shown["thumb"] == [320, 160], shown
    bob.driver.refresh()
    bob.wait(lambda: bob.connection() == "online", "Bob is online after the reload")
    bob.open_conversation("Alice")
    again = bob.wait(
        lambda: (m := bob.message("Greetings from the lake")) and m["thumb"] and m, "the photo after a reload"
    )
    assert again["thumb"] == [320, 160]


def test_deleting_the_account_from_the_devices_dialog(browsers):
    """Bob deletes his account: a wrong password is refused in the dialog, the right one
    ends on the login form, and his phone can no longer log in."""
    _, bob = browsers
    bob.by_id("sessions-button").click()
    bob.wait(lambda: bob.by_id("sessions-dialog").is_displayed(), "the devices dialog opens")
    bob.by_id("delete-account-button").click()
    bob.wait(lambda: bob.by_id("delete-account-dialog").is_displayed(), "the deletion dialog opens")
    bob.by_id("delete-account-password").send_keys("not the password" + Keys.ENTER)
    bob.wait(
        lambda: bob.by_id("delete-account-error").text == "Wrong password.", "a wrong password is refused"
    )
    bob.by_id("delete-account-password").clear()
    bob.by_id("delete-account-password").send_keys(PASSWORD + Keys.ENTER)
    bob.wait(lambda: bob.by_id("login-form").is_displayed(), "the login form after the deletion")
    assert "account is deleted" in bob.by_id("auth-error").text
    refused = requests.post(
        BASE_URL + "api/v1/auth/login", json={"phone": bob.phone, "password": PASSWORD}, timeout=10
    )
    assert refused.status_code == 401, refused.text
