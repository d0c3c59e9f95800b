"""Pagination cursors: opaque, signed, and good only for the action, user and conversation they came from."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from courier_gateway.composition import build_gateway
from courier_gateway.settings import GatewaySettings
from courier_shared.db.store import encode_cursor

from .conftest import Client, GatewayHarness, RecordingQueue, gateway_settings, make_owner


def history_frame(conversation_id: str, before: str | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"action": "getHistory", "conversationId": conversation_id, "limit": 1}
    if before is not None:
        frame["before"] = before
    return frame


def conversations_frame(before: str | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"action": "listConversations", "limit": 1}
    if before is not None:
        frame["before"] = before
    return frame


def assert_refused(answer: dict[str, Any], action: str) -> None:
    assert (answer["type"], answer["code"], answer["action"]) == ("error", "bad_request", action)
    assert "cursor" in answer["message"]


@pytest.fixture
def two_conversations(harness: GatewayHarness) -> tuple[Client, str, str]:
    """A user with two conversations of two turns each."""
    client = harness.client(make_owner())
    first = client.send_message("a1")["conversationId"]
    client.send_message("a2", conversationId=first)
    second = client.send_message("b1")["conversationId"]
    client.send_message("b2", conversationId=second)
    return client, first, second


def test_issued_cursors_page_on_and_carry_no_readable_position(two_conversations: Any) -> None:
    client, first, _ = two_conversations
    page = client.send(history_frame(first))
    cursor = page["nextCursor"]
    assert cursor and "|" not in cursor and first not in cursor
    older = client.send(history_frame(first, cursor))
    assert [turn["userText"] for turn in older["turns"]] == ["a1"]

    listing = client.send(conversations_frame())
    assert client.send(conversations_frame(listing["nextCursor"]))["type"] == "conversations"


def test_a_forged_cursor_is_refused(two_conversations: Any) -> None:
    client, first, _ = two_conversations
    unsigned = encode_cursor(datetime(2099, 1, 1, tzinfo=UTC), uuid.uuid4())  # the old, readable format
    assert_refused(client.send(history_frame(first, unsigned)), "getHistory")
    assert_refused(client.send(conversations_frame(unsigned)), "listConversations")


def test_a_tampered_cursor_is_refused(two_conversations: Any) -> None:
    client, first, _ = two_conversations
    cursor = client.send(history_frame(first))["nextCursor"]
    position, signature = cursor.rsplit(".", 1)
    flipped = position[:-3] + ("A" if position[-3] != "A" else "B") + position[-2:]
    assert_refused(client.send(history_frame(first, f"{flipped}.{signature}")), "getHistory")
    assert_refused(client.send(history_frame(first, position)), "getHistory")  # signature dropped


def test_a_cursor_only_works_for_its_own_action_and_conversation(two_conversations: Any) -> None:
    client, first, second = two_conversations
    history_cursor = client.send(history_frame(first))["nextCursor"]
    listing_cursor = client.send(conversations_frame())["nextCursor"]

    assert_refused(client.send(history_frame(second, history_cursor)), "getHistory")
    assert_refused(client.send(conversations_frame(history_cursor)), "listConversations")
    assert_refused(client.send(history_frame(first, listing_cursor)), "getHistory")


def test_a_cursor_only_works_for_the_user_it_was_issued_to(
    harness: GatewayHarness, two_conversations: Any
) -> None:
    client, _, _ = two_conversations
    listing_cursor = client.send(conversations_frame())["nextCursor"]
    other = harness.client(make_owner())
    other.send_message("mine")
    other.send_message("mine too")

    assert_refused(other.send(conversations_frame(listing_cursor)), "listConversations")


def test_a_cursor_from_a_gateway_with_another_key_is_refused(make_harness: Any, store: Any) -> None:
    harness = make_harness()
    owner = make_owner()
    client = harness.client(owner)
    client.send_message("one")
    client.send_message("two")
    cursor = client.send(conversations_frame())["nextCursor"]

    rekeyed = build_gateway(
        gateway_settings(CURSOR_SIGNING_KEY="another-key-" + "x" * 32), store=store, queue=RecordingQueue()
    )

    assert_refused(Client(rekeyed, owner).send(conversations_frame(cursor)), "listConversations")


def test_the_settings_need_exactly_one_cursor_key() -> None:
    base = {"TURN_QUEUE_URL": "https://sqs.invalid/q.fifo"}
    with pytest.raises(ValueError, match="CURSOR_KEY_SECRET_ARN"):
        GatewaySettings.model_validate(base)
    with pytest.raises(ValueError, match="exactly one"):
        GatewaySettings.model_validate(
            {**base, "CURSOR_SIGNING_KEY": "k" * 32, "CURSOR_KEY_SECRET_ARN": "arn:aws:secretsmanager:x"}
        )
    with pytest.raises(ValueError, match="at least 32"):
        GatewaySettings.model_validate({**base, "CURSOR_SIGNING_KEY": "short"})


@pytest.fixture
def secrets_manager(monkeypatch: pytest.MonkeyPatch, moto: Any) -> Any:
    """moto's Secrets Manager over HTTP; boto3 (inside Powertools) finds it through the environment."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto.endpoint_url)
    return moto.client("secretsmanager")


def test_in_aws_the_key_is_read_from_secrets_manager_at_cold_start(secrets_manager: Any, store: Any) -> None:
    secret_arn = secrets_manager.create_secret(
        Name=f"courier-cursor-key-{uuid.uuid4().hex[:8]}", SecretString="s" * 48
    )["ARN"]
    settings = GatewaySettings.model_validate(
        {"TURN_QUEUE_URL": "https://sqs.invalid/q.fifo", "CURSOR_KEY_SECRET_ARN": secret_arn}
    )
    from_secret = build_gateway(settings, store=store, queue=RecordingQueue())
    same_key = build_gateway(
        gateway_settings(CURSOR_SIGNING_KEY="s" * 48), store=store, queue=RecordingQueue()
    )
    owner = make_owner()
    client = Client(from_secret, owner)
    client.send_message("one")
    client.send_message("two")

    cursor = client.send(conversations_frame())["nextCursor"]

    assert Client(same_key, owner).send(conversations_frame(cursor))["type"] == "conversations"


@pytest.mark.parametrize("cursor", ["0.\x80", "é.é", ".", "x.", "\x00.\x00"])
def test_a_cursor_of_any_characters_is_a_bad_request_not_a_crash(two_conversations: Any, cursor: str) -> None:
    client, first, _ = two_conversations
    assert_refused(client.send(history_frame(first, cursor)), "getHistory")
