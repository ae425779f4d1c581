"""The scripted OpenAI server must be something the real `openai` client accepts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import openai
import pytest
from openai import AsyncOpenAI

from tests.fakes.openai_server import FakeOpenAIServer, Reply, Usage

MESSAGES: list[openai.types.chat.ChatCompletionMessageParam] = [
    {"role": "user", "content": "hello"}
]


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as fake:
        yield fake


def client_for(server: FakeOpenAIServer, *, timeout: float = 5.0) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=timeout)


async def test_completion_is_parsed_and_request_recorded(server: FakeOpenAIServer) -> None:
    server.push(Reply.json({"ok": True}, usage=Usage(prompt_tokens=11, completion_tokens=3)))

    async with client_for(server) as client:
        completion = await client.chat.completions.create(model="judge-1", messages=MESSAGES)

    assert completion.object == "chat.completion"
    assert completion.model == "judge-1"
    assert completion.choices[0].finish_reason == "stop"
    assert json.loads(completion.choices[0].message.content or "") == {"ok": True}
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (11, 3)
    [request] = server.chat_requests
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.body["model"] == "judge-1"
    assert request.body["messages"] == MESSAGES
    assert request.status == 200


async def test_stream_arrives_in_chunks_with_usage_and_done(server: FakeOpenAIServer) -> None:
    server.push(Reply.text("Hi, I'm calling about my bill.", chunk_chars=5, usage=Usage(9, 8)))

    async with client_for(server) as client:
        stream = await client.chat.completions.create(
            model="persona", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]

    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert "".join(pieces) == "Hi, I'm calling about my bill."
    assert len(pieces) == 6
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 17
    assert server.chat_requests[0].body["stream"] is True


async def test_stream_without_usage_option_has_no_usage_chunk(server: FakeOpenAIServer) -> None:
    server.push(Reply.text("short"))

    async with client_for(server) as client:
        stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        chunks = [chunk async for chunk in stream]

    assert all(c.usage is None and c.choices for c in chunks)


async def test_models_are_listed(server: FakeOpenAIServer) -> None:
    server.models = ["judge-a", "persona-b"]

    async with client_for(server) as client:
        page = await client.models.list()

    assert [m.id for m in page.data] == ["judge-a", "persona-b"]


async def test_status_replies_reach_the_client_as_sdk_errors(server: FakeOpenAIServer) -> None:
    server.push(Reply.rate_limited(retry_after_s=2), Reply.error(503), Reply.error(401))

    async with client_for(server) as client:
        with pytest.raises(openai.RateLimitError) as limited:
            await client.chat.completions.create(model="m", messages=MESSAGES)
        with pytest.raises(openai.InternalServerError) as unavailable:
            await client.chat.completions.create(model="m", messages=MESSAGES)
        with pytest.raises(openai.AuthenticationError):
            await client.chat.completions.create(model="m", messages=MESSAGES)

    assert limited.value.response.headers["retry-after"] == "2"
    assert limited.value.code == "rate_limit_exceeded"
    assert unavailable.value.status_code == 503
    assert [r.status for r in server.chat_requests] == [429, 503, 401]


async def test_malformed_body_fails_to_parse(server: FakeOpenAIServer) -> None:
    server.push(Reply.malformed())

    async with client_for(server) as client:
        with pytest.raises(json.JSONDecodeError):
            await client.chat.completions.create(model="m", messages=MESSAGES)


async def test_delay_trips_client_timeout_and_disconnect_is_recorded(
    server: FakeOpenAIServer,
) -> None:
    server.push(Reply.text("late", delay_s=5.0))

    async with client_for(server, timeout=0.2) as client:
        with pytest.raises(openai.APITimeoutError):
            await client.chat.completions.create(model="m", messages=MESSAGES)
    for _ in range(100):
        if server.chat_requests[0].disconnected:
            break
        await asyncio.sleep(0.02)

    assert server.chat_requests[0].disconnected
    assert server.chat_requests[0].status is None


async def test_handler_answers_after_the_queue_and_unscripted_requests_get_500(
    server: FakeOpenAIServer,
) -> None:
    server.push(Reply.text("from the queue"))
    seen: list[str] = []

    def handler(body: dict[str, object]) -> Reply:
        seen.append(str(body["model"]))
        return Reply.text("from the handler")

    async with client_for(server) as client:
        first = await client.chat.completions.create(model="a", messages=MESSAGES)
        server.handler = handler
        second = await client.chat.completions.create(model="b", messages=MESSAGES)
        server.handler = None
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model="c", messages=MESSAGES)

    assert first.choices[0].message.content == "from the queue"
    assert second.choices[0].message.content == "from the handler"
    assert seen == ["b"]
    assert server.unscripted == 1


async def test_concurrent_requests_are_counted_in_flight(server: FakeOpenAIServer) -> None:
    server.handler = lambda body: Reply.text("ok", delay_s=0.5)

    async with client_for(server) as client:
        await asyncio.gather(
            *(client.chat.completions.create(model="m", messages=MESSAGES) for _ in range(5))
        )

    requests = server.chat_requests
    assert server.max_in_flight == 5
    assert server.in_flight == 0
    assert all(r.finished_at is not None and r.finished_at >= r.arrived_at for r in requests)
