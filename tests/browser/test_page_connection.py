"""The chat page in Chromium when the network goes silent, and when a sign-in is refused or expires.

A network that goes silent raises no event in a browser: the page notices only because its heartbeat
gets no pong. The test puts a TCP proxy between the page and `courier dev` whose switch stops every
byte in both directions while keeping the sockets open (and leaves new connections hanging), as a
dead Wi-Fi does, and checks what the user sees: the banner, the pill, then the same answer, whole.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.devstack import DevStack, courier_command, stack_env

from browser.conftest import DESKTOP, ChatPage

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The offline model's filler words (local/src/courier_local/offline_model.py): "lorem N" answers these.
LOREM_WORDS = ["lorem", "ipsum", "dolor", "sit", "amet", "consectetur"]
LOREM_WORDS += ["adipiscing", "elit", "sed", "do", "eiusmod", "tempor"]


def lorem(count: int) -> str:
    return " ".join(LOREM_WORDS[i % len(LOREM_WORDS)] for i in range(count))


class SilentNetworkProxy:
    """A TCP proxy on 127.0.0.1 to `target_port`. `blackhole()` makes the network silent: bytes stop
    in both directions (held, not dropped, as TCP retransmits them), no socket is closed, and a new
    connection is accepted but goes nowhere. `restore()` lets everything through again;
    `restore(deliver=False)` cuts the connections the silence caught instead (what they held never
    arrives), as when the network comes back as another network."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._open = threading.Event()
        self._open.set()
        self._stopped = False
        self._epoch = 0  # bumped when connections are cut: a connection of an older epoch forwards nothing
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def blackhole(self) -> None:
        self._open.clear()

    def restore(self, *, deliver: bool = True) -> None:
        if not deliver:
            with self._lock:
                self._epoch += 1
                for sock in self._sockets:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
                self._sockets.clear()
        self._open.set()

    def stop(self) -> None:
        self._stopped = True
        self._open.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()

    def _track(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.append(sock)
        return sock

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connect, args=(self._track(client),), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        epoch = self._epoch
        self._open.wait()  # a connection made while the network is silent hangs
        if self._stopped or epoch != self._epoch:
            client.close()
            return
        try:
            upstream = self._track(socket.create_connection(("127.0.0.1", self.target_port)))
        except OSError:
            client.close()
            return
        threading.Thread(target=self._pump, args=(client, upstream, epoch), daemon=True).start()
        threading.Thread(target=self._pump, args=(upstream, client, epoch), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, epoch: int) -> None:
        try:
            while True:
                data = source.recv(65536)
                self._open.wait()  # silent: hold the bytes (and an end of stream) until restored
                if not data or epoch != self._epoch:
                    break
                sink.sendall(data)
        except OSError:
            self._open.wait()
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@pytest.fixture
def proxy(browser_stack: DevStack) -> Iterator[SilentNetworkProxy]:
    proxy = SilentNetworkProxy(browser_stack.port)
    yield proxy
    proxy.stop()


def page_through(proxy: SilentNetworkProxy, stack: DevStack, open_page: Any, user: str) -> ChatPage:
    """The page from the stack, signed in, its WebSockets through the proxy (config.ts honours ?ws=)."""
    base_url = f"http://127.0.0.1:{stack.port}/?ws=ws://127.0.0.1:{proxy.port}/"
    chat: ChatPage = open_page(DESKTOP, base_url=base_url).sign_in(user)
    return chat


@pytest.mark.parametrize(
    "count",
    [
        pytest.param(150, id="the-answer-ends-while-away"),  # 6 s: over before the page notices
        pytest.param(500, id="the-answer-still-streams-when-back"),  # 20 s: resumed mid-answer
    ],
)
def test_a_silent_network_shows_the_banner_then_the_same_answer_whole(
    open_page: Any, browser_stack: DevStack, proxy: SilentNetworkProxy, output_dir: Path, count: int
) -> None:
    chat = page_through(proxy, browser_stack, open_page, f"page-silent-network-{count}")
    pill = chat.page.get_by_test_id("connection")
    banner = chat.page.get_by_test_id("banner")

    chat.send(f"lorem {count}")
    chat.page.wait_for_function(
        "() => (document.querySelector('[data-testid=answer-text]')?.innerText ?? '').split(' ').length >= 5"
    )
    proxy.blackhole()

    # No event tells the page; its heartbeat does, within its ping interval plus the pong wait.
    banner.wait_for(timeout=10_000)
    assert "Connection lost" in banner.inner_text()
    assert pill.inner_text() == "reconnecting…"
    assert chat.page.get_by_test_id("ending").count() == 0  # the answer is not called failed
    # ...nor finished: it says the rest follows, and shows no figures yet.
    chat.page.get_by_test_id("resuming").wait_for()
    assert chat.answers().first.get_by_test_id("figures").count() == 0
    chat.screenshot(output_dir, f"silent-network-{count}-reconnecting")

    proxy.restore()
    chat.wait_connected(timeout_ms=30_000)
    banner.wait_for(state="detached")
    answer = chat.answers().first
    answer.get_by_test_id("figures").filter(has_text=re.compile(r"\d+ tokens")).wait_for(timeout=60_000)
    chat.screenshot(output_dir, f"silent-network-{count}-resumed")
    assert chat.page.get_by_test_id("resuming").count() == 0

    shown = chat.answer_text(answer)
    assert len(shown.split()) == count
    assert shown == lorem(count)  # every word once: nothing lost, nothing repeated
    assert chat.answers().count() == 1
    assert chat.page.get_by_test_id("ending").count() == 0

    # What Courier stored is what was shown.
    chat.page.reload()
    stored = chat.wait_answers_finished(1)
    assert chat.answer_text(stored) == shown
    assert not chat.errors


def test_a_message_lost_with_the_connection_comes_back_to_the_box(
    open_page: Any, browser_stack: DevStack, proxy: SilentNetworkProxy, output_dir: Path
) -> None:
    chat = page_through(proxy, browser_stack, open_page, "page-lost-message")
    chat.send("the first question")
    assert chat.answer_text(chat.wait_answers_finished(1)) == "You said: the first question"

    # The network goes silent and nothing tells the page: the message leaves for a dead connection,
    # which the network cuts when it comes back (what it held never reaches Courier).
    proxy.blackhole()
    chat.send("the lost question")
    chat.page.get_by_test_id("banner").wait_for(timeout=10_000)
    proxy.restore(deliver=False)
    chat.wait_connected(timeout_ms=30_000)

    # Courier never took it: it leaves the conversation and comes back to the box, with why.
    reason = chat.page.get_by_test_id("composer-reason")
    reason.wait_for(timeout=15_000)
    assert "before Courier took this message" in reason.inner_text()
    assert chat.page.get_by_test_id("message-input").input_value() == "the lost question"
    assert chat.page.get_by_test_id("user-message").all_inner_texts()[-1].startswith("the first question")
    chat.screenshot(output_dir, "lost-message-back-in-the-box")

    # Sent again, it is answered once.
    chat.page.get_by_test_id("send").click()
    assert chat.answer_text(chat.wait_answers_finished(2)) == "You said: the lost question"
    assert chat.page.get_by_test_id("user-message").count() == 2
    assert not chat.errors


def test_the_first_message_of_a_new_chat_lost_with_the_connection_comes_back_to_the_box(
    open_page: Any, browser_stack: DevStack, proxy: SilentNetworkProxy, output_dir: Path
) -> None:
    chat = page_through(proxy, browser_stack, open_page, "page-lost-first-message")

    proxy.blackhole()  # before the chat's own socket opens: the message cannot leave the page
    chat.send("a message into the silence")
    chat.page.get_by_test_id("banner").wait_for(timeout=10_000)
    proxy.restore()
    chat.wait_connected(timeout_ms=30_000)

    chat.page.get_by_test_id("composer-reason").wait_for(timeout=15_000)
    assert chat.page.get_by_test_id("message-input").input_value() == "a message into the silence"
    assert chat.page.get_by_test_id("user-message").count() == 0


def mint_token(stack: DevStack, user: str, ttl_s: int) -> str:
    """`courier token` with the stack's dev issuer, as a developer mints a short-lived token."""
    result = subprocess.run(
        [*courier_command(), "token", "--user", user, "--tenant", "page", "--ttl", str(ttl_s)],
        cwd=stack.workdir,
        env=stack_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout.strip()


def sign_in_with(chat: ChatPage, token: str) -> None:
    chat.page.goto(chat.base_url)
    chat.page.locator("details.paste summary").click()
    chat.page.get_by_test_id("token-input").fill(token)
    chat.page.get_by_test_id("token-signin").click()


def test_a_refused_token_returns_to_sign_in_with_the_reason(open_page: Any, output_dir: Path) -> None:
    chat: ChatPage = open_page(DESKTOP)
    garbage = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJub2JvZHkifQ.bm90LWEtc2lnbmF0dXJl"

    sign_in_with(chat, garbage)

    error = chat.page.get_by_test_id("signin-error")
    error.wait_for(timeout=30_000)
    assert "did not accept this sign-in" in error.inner_text()
    assert chat.page.get_by_test_id("dev-signin").is_visible()  # the sign-in page, not the chat
    assert chat.page.get_by_test_id("connection").count() == 0
    chat.screenshot(output_dir, "token-refused")


def test_an_expired_token_returns_to_sign_in_saying_it_expired(
    open_page: Any, browser_stack: DevStack, output_dir: Path
) -> None:
    chat: ChatPage = open_page(DESKTOP)
    token = mint_token(browser_stack, "page-expired", ttl_s=1)
    time.sleep(2)  # the token's whole life: it has expired when the page gets it

    sign_in_with(chat, token)

    error = chat.page.get_by_test_id("signin-error")
    error.wait_for(timeout=15_000)
    assert "expired" in error.inner_text()
    assert chat.page.get_by_test_id("dev-signin").is_visible()
    assert chat.page.get_by_test_id("connection").count() == 0
    chat.screenshot(output_dir, "token-expired")


def test_a_token_that_expires_during_the_session_returns_to_sign_in(
    open_page: Any, browser_stack: DevStack, output_dir: Path
) -> None:
    chat: ChatPage = open_page(DESKTOP)
    sign_in_with(chat, mint_token(browser_stack, "page-expiring", ttl_s=6))

    chat.wait_connected(timeout_ms=5_000)
    chat.page.get_by_test_id("who").filter(has_text="page-expiring").wait_for()
    chat.screenshot(output_dir, "token-expiring-signed-in")

    error = chat.page.get_by_test_id("signin-error")
    error.wait_for(timeout=20_000)
    assert "expired" in error.inner_text()
    assert chat.page.get_by_test_id("connection").count() == 0
    chat.screenshot(output_dir, "token-expired-during-session")
