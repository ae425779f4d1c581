"""Signing in and staying safe: sessions, the trusted proxy header, and CSRF tokens.

Three ways to be signed in, checked in this order:

1. behind an identity-aware proxy, a header (e.g. `X-Forwarded-Email`) names the person,
   believed only when the request comes straight from an address in `trusted_proxies`;
2. the session cookie of the built-in sign-in (signed, `SameSite=Lax`, `Secure` with
   `https_only`), which also carries a fingerprint of the password hash, so a new password
   ends old sessions;
3. for `/api` only, HTTP Basic credentials, for integrations that cannot keep a cookie.

Every form POST carries the session's CSRF token (`csrf_token` field), and every
state-changing API call made with the cookie carries it in `X-CSRF-Token`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import logging
import secrets
from datetime import timedelta
from functools import lru_cache

from sqlmodel import Session
from starlette.requests import Request

from store.models import Credential, Person
from web.context import Forbidden, NotSignedIn, WebContext, web_context
from web.passwords import hash_fingerprint
from web.permissions import Viewer, load_viewer
from web.users import authenticate, find_person

logger = logging.getLogger(__name__)

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@lru_cache(maxsize=32)
def _networks(
    addresses: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(a, strict=False) for a in addresses)


def from_trusted_proxy(context: WebContext, request: Request) -> bool:
    host = request.client.host if request.client else None
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    networks = _networks(tuple(context.settings.web.trusted_proxies))
    return any(address in network for network in networks)


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use."""
    token = request.session.get("csrf")
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def start_session(request: Request, person: Person, password_hash: str | None) -> None:
    """Sign a person in: a fresh session (new CSRF token) that names them."""
    request.session.clear()
    request.session["uid"] = person.id
    if password_hash is not None:
        request.session["pw"] = hash_fingerprint(password_hash)
    csrf_token(request)


def end_session(request: Request) -> None:
    request.session.clear()


def _proxy_viewer(context: WebContext, request: Request, session: Session) -> Viewer | None:
    header = context.settings.web.proxy_user_header
    if not header:
        return None
    value = request.headers.get(header)
    if value is None:
        return None
    if not from_trusted_proxy(context, request):
        logger.warning(
            "proxy header from untrusted address",
            extra={"header": header, "client": request.client.host if request.client else None},
        )
        return None
    person = find_person(session, value)
    if person is None or not person.active:
        raise Forbidden(
            "You are signed in to the company's sign-in, but no active person in coachloop has "
            "that e-mail; ask an admin to add you with `coachloop org import`"
        )
    return load_viewer(session, person)


def _session_viewer(request: Request, session: Session) -> Viewer | None:
    uid = request.session.get("uid")
    if not isinstance(uid, int):
        return None
    person = session.get(Person, uid)
    if person is None or not person.active:
        end_session(request)
        return None
    credential = session.get(Credential, uid)
    fingerprint = request.session.get("pw")
    if credential is None or fingerprint != hash_fingerprint(credential.password_hash):
        end_session(request)  # the password changed (or was removed) since sign-in
        return None
    return load_viewer(session, person)


def _basic_viewer(context: WebContext, request: Request, session: Session) -> Viewer | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        login, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise NotSignedIn("The Authorization header is not valid Basic credentials") from None
    web = context.settings.web
    result = authenticate(
        context.engine,
        login,
        password,
        now=context.now(),
        max_failures=web.max_failed_logins,
        lockout=timedelta(minutes=web.lockout_minutes),
    )
    if result.person is None:
        raise NotSignedIn(result.problem or "Sign-in failed")
    request.state.basic_auth = True
    return load_viewer(session, result.person)


def viewer_or_none(request: Request) -> Viewer | None:
    """The signed-in person, or None; read once per request."""
    if hasattr(request.state, "viewer"):
        found: Viewer | None = request.state.viewer
        return found
    context = web_context(request)
    with Session(context.engine) as session:
        viewer = _proxy_viewer(context, request, session)
        if viewer is not None:
            request.state.via_proxy = True
        else:
            viewer = _session_viewer(request, session)
        if viewer is None and request.url.path.startswith("/api/"):
            viewer = _basic_viewer(context, request, session)
    request.state.viewer = viewer
    return viewer


def require_viewer(request: Request) -> Viewer:
    """The signed-in person; anyone else is sent to sign in (or gets 401 from the API)."""
    viewer = viewer_or_none(request)
    if viewer is None:
        raise NotSignedIn("Sign in to see this page")
    return viewer


def require_manager(request: Request) -> Viewer:
    viewer = require_viewer(request)
    if not viewer.is_manager:
        raise Forbidden("Only managers and admins can open this page")
    return viewer


def require_admin(request: Request) -> Viewer:
    viewer = require_viewer(request)
    if not viewer.is_admin:
        raise Forbidden("Only admins can do this")
    return viewer


async def check_csrf(request: Request) -> None:
    """Refuse a state-changing request without the session's CSRF token.

    Applied to every router; safe methods pass, and API calls authenticated with Basic
    credentials (which a browser never sends on its own here) need no token.
    """
    if request.method in SAFE_METHODS:
        return
    if request.url.path.startswith("/api/") and request.headers.get(
        "authorization", ""
    ).lower().startswith("basic "):
        return
    expected = request.session.get("csrf")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
    if not isinstance(expected, str) or not sent or not hmac.compare_digest(expected, sent):
        logger.warning("csrf check failed", extra={"path": request.url.path})
        raise Forbidden(
            "This form has expired or did not come from coachloop; reload the page and try again"
        )
