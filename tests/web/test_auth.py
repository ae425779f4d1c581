"""Signing in and out, sessions, lockout, the trusted proxy header and the session secret."""

from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from config.settings import Settings
from tests.web.conftest import csrf_of, login, make_app, make_settings, new_person
from tests.web.seed import NOW, PASSWORD, RUBRICS, Seed
from web import create_app
from web.factory import SECRET_FILE, SESSION_COOKIE, resolve_secret
from web.passwords import hash_password, verify_password
from web.users import authenticate, set_password


def test_pages_send_strangers_to_sign_in_and_the_api_answers_401(client: TestClient) -> None:
    page = client.get("/teams/north", follow_redirects=False)
    api = client.get("/api/teams")

    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=/teams/north"
    assert api.status_code == 401
    assert api.json()["detail"]


def test_a_manager_signs_in_and_lands_on_their_team(client: TestClient) -> None:
    login(client, "mgr-north")

    home = client.get("/", follow_redirects=True)

    assert home.url.path == "/teams/north"
    assert "North" in home.text


def test_a_rep_signs_in_with_their_email_and_lands_on_their_own_page(
    client: TestClient, seed: Seed
) -> None:
    login(client, "ALICE@example.com")

    home = client.get("/", follow_redirects=True)

    assert home.url.path == f"/reps/{seed.person('alice')}"


def test_a_wrong_password_is_refused_without_saying_which_half_was_wrong(
    client: TestClient,
) -> None:
    token = csrf_of(client.get("/login").text)

    wrong = client.post(
        "/login", data={"username": "alice", "password": "nope-nope", "csrf_token": token}
    )
    unknown = client.post(
        "/login", data={"username": "nobody", "password": PASSWORD, "csrf_token": token}
    )

    assert wrong.status_code == unknown.status_code == 401
    assert "do not match" in wrong.text and "do not match" in unknown.text
    assert client.get("/api/me").status_code == 401


def test_signing_out_ends_the_session(client: TestClient) -> None:
    token = login(client, "mgr-north")

    client.post("/logout", data={"csrf_token": token})

    assert client.get("/api/me").status_code == 401
    assert client.get("/teams", follow_redirects=False).status_code == 303


def test_an_account_locks_after_repeated_failures(client: TestClient, seed: Seed) -> None:
    who = new_person(seed)
    token = csrf_of(client.get("/login").text)
    for _ in range(3):
        client.post(
            "/login", data={"username": who, "password": "wrong-guess", "csrf_token": token}
        )

    locked = client.post(
        "/login", data={"username": who, "password": PASSWORD, "csrf_token": token}
    )

    assert locked.status_code == 401
    assert "Too many failed attempts" in locked.text


def test_the_lock_lifts_after_the_lockout(seed: Seed) -> None:
    who = new_person(seed)
    lockout = timedelta(minutes=15)
    for _ in range(3):
        authenticate(seed.engine, who, "wrong", now=NOW, max_failures=3, lockout=lockout)

    during = authenticate(
        seed.engine, who, PASSWORD, now=NOW + timedelta(minutes=5), max_failures=3, lockout=lockout
    )
    after = authenticate(
        seed.engine, who, PASSWORD, now=NOW + timedelta(minutes=16), max_failures=3, lockout=lockout
    )

    assert during.person is None and "Too many" in (during.problem or "")
    assert after.person is not None and after.person.external_id == who


def test_a_new_password_ends_sessions_signed_in_with_the_old_one(
    client: TestClient, seed: Seed
) -> None:
    who = new_person(seed)
    login(client, who)
    assert client.get("/api/me").status_code == 200

    set_password(seed.engine, who, "a-brand-new-password", now=NOW)

    assert client.get("/api/me").status_code == 401
    login(client, who, "a-brand-new-password")
    assert client.get("/api/me").json()["external_id"] == who


def test_sign_in_only_redirects_to_this_site(client: TestClient) -> None:
    token = csrf_of(client.get("/login").text)

    response = client.post(
        "/login",
        data={
            "username": "dan",
            "password": PASSWORD,
            "csrf_token": token,
            "next": "//evil.test/x",
        },
        follow_redirects=False,
    )

    assert response.status_code == 303
    assert response.headers["location"] == "/"


def test_the_session_cookie_is_http_only_same_site_and_secure_when_asked(seed: Seed) -> None:
    plain = TestClient(make_app(seed))
    secure = TestClient(make_app(seed, https_only=True), base_url="https://testserver")

    plain_cookie = plain.get("/login").headers["set-cookie"]
    secure_cookie = secure.get("/login").headers["set-cookie"]

    assert plain_cookie.startswith(SESSION_COOKIE + "=")
    assert "httponly" in plain_cookie.lower() and "samesite=lax" in plain_cookie.lower()
    assert "secure" not in plain_cookie.lower()
    assert "secure" in secure_cookie.lower()


def test_pages_carry_security_headers_and_server_timing(client: TestClient) -> None:
    response = client.get("/login")

    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["server-timing"].startswith("app;dur=")


def test_the_proxy_header_is_believed_only_from_a_trusted_proxy(seed: Seed) -> None:
    app = make_app(seed, proxy_user_header="X-Forwarded-Email", trusted_proxies=["10.0.0.0/24"])
    via_proxy = TestClient(app, client=("10.0.0.7", 40000))
    direct = TestClient(app, client=("192.168.1.50", 40000))
    header = {"X-Forwarded-Email": "MGR-NORTH@example.com"}

    trusted = via_proxy.get("/api/me", headers=header)
    forged = direct.get("/api/me", headers=header)
    unknown = via_proxy.get("/api/me", headers={"X-Forwarded-Email": "who@else.test"})

    assert trusted.status_code == 200 and trusted.json()["external_id"] == "mgr-north"
    assert forged.status_code == 401
    assert unknown.status_code == 403
    assert "no active person" in unknown.json()["detail"]


def test_behind_the_proxy_forms_still_need_the_csrf_token(seed: Seed) -> None:
    app = make_app(seed, proxy_user_header="X-Forwarded-Email", trusted_proxies=["10.0.0.7"])
    client = TestClient(app, client=("10.0.0.7", 40000))
    client.headers["X-Forwarded-Email"] = "alice@example.com"
    interaction = seed.calls["alice"][0]
    page = client.get(f"/interactions/{interaction}")
    score_id = int(page.text.split('<option value="')[1].split('"')[0])

    refused = client.post(
        f"/interactions/{interaction}/disputes", data={"score_id": score_id, "reason": "x"}
    )
    accepted = client.post(
        f"/interactions/{interaction}/disputes",
        data={"score_id": score_id, "reason": "I did confirm", "csrf_token": csrf_of(page.text)},
    )

    assert refused.status_code == 403
    assert accepted.status_code == 200 and "sent to your manager" in accepted.text


def test_the_session_secret_is_generated_once_and_kept_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)

    first = resolve_secret(settings)
    second = resolve_secret(settings)

    assert first == second and len(first) >= 32
    mode = (tmp_path / SECRET_FILE).stat().st_mode
    assert stat.S_IMODE(mode) == 0o600


def test_a_short_configured_secret_is_refused(seed: Seed) -> None:
    settings = make_settings(seed.data_dir, secret_key="short")

    try:
        create_app(engine=seed.engine, settings=settings, rubrics=RUBRICS)
    except ValueError as exc:
        assert "shorter than 32" in str(exc)
    else:
        raise AssertionError("a short secret was accepted")


def test_password_hashes_are_salted_scrypt() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")

    assert first != second and first.startswith("scrypt$")
    assert verify_password("correct horse", first)
    assert not verify_password("correct hors", first)
    assert not verify_password("correct horse", "md5$abc")
