"""Every state-changing request needs the session's CSRF token."""

from __future__ import annotations

import re

from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from tests.web.conftest import csrf_of, login, make_app
from tests.web.seed import PASSWORD, Seed
from web.routes import api, auth, calibration, outbox, pages, practice


def _post_paths(seed: Seed) -> list[str]:
    """Every POST route of the routers the web app includes, with ids filled in."""
    values = {
        "slug": "north",
        "decision_id": str(seed.pending_decisions[0]) if seed.pending_decisions else "1",
        "interaction_id": str(seed.calls["alice"][0]),
        "dispute_id": "1",
        "name": "calibration",
        "session_id": "abc",
    }
    routers = [("", m.router) for m in (auth, pages, calibration, outbox, practice)]
    paths = []
    for prefix, router in [*routers, ("/api", api.router)]:
        for route in router.routes:
            if isinstance(route, APIRoute) and "POST" in (route.methods or set()):
                path = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], route.path)
                paths.append(prefix + path)
    return paths


def test_every_post_route_refuses_a_request_without_the_token(seed: Seed) -> None:
    app = make_app(seed)
    client = TestClient(app)
    login(client, "admin")
    paths = _post_paths(seed)
    assert {"/login", "/logout", "/practice/start", "/calibration/sets"} <= set(paths)
    assert any(p.startswith("/api/cohort-decisions/") for p in paths)

    refused = {
        path: client.post(path, data={"reason": "x", "action": "approve"}).status_code
        for path in paths
    }

    assert refused == dict.fromkeys(paths, 403)
    assert client.get("/api/me").status_code == 200  # still signed in: nothing was done


def test_a_token_from_another_session_is_refused(seed: Seed) -> None:
    app = make_app(seed)
    mine, theirs = TestClient(app), TestClient(app)
    login(mine, "alice")
    other_token = login(theirs, "bob")
    interaction = seed.calls["alice"][2]

    response = mine.post(
        f"/interactions/{interaction}/disputes",
        data={"score_id": 1, "reason": "forged", "csrf_token": other_token},
    )

    assert response.status_code == 403
    assert "expired or did not come from coachloop" in response.text


def test_signing_in_needs_the_token_too(client: TestClient) -> None:
    response = client.post("/login", data={"username": "alice", "password": PASSWORD})

    assert response.status_code == 403
    assert client.get("/api/me").status_code == 401


def test_the_api_takes_the_token_in_a_header(seed: Seed) -> None:
    app = make_app(seed)
    client = TestClient(app)
    token = login(client, "mgr-south")
    url = "/api/cohort-decisions/999999"

    without = client.post(url, json={"approved": True})
    with_header = client.post(url, json={"approved": True}, headers={"X-CSRF-Token": token})

    assert without.status_code == 403
    assert with_header.status_code == 404  # past the token check: no such decision


def test_basic_credentials_need_no_token(seed: Seed) -> None:
    client = TestClient(make_app(seed))

    response = client.post(
        "/api/cohort-decisions/999999", json={"approved": False}, auth=("mgr-south", PASSWORD)
    )

    assert response.status_code == 404


def test_the_login_page_token_is_tied_to_its_session(client: TestClient) -> None:
    first = csrf_of(client.get("/login").text)
    again = csrf_of(client.get("/login").text)

    assert first == again and len(first) >= 32
