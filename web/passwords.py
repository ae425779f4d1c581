"""Password hashes for the built-in sign-in: salted scrypt from the standard library."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# scrypt with N=2^14, r=8, p=1 costs about 16 MiB and a few tens of milliseconds per check:
# cheap for one sign-in, expensive for a guesser working through a stolen table.
_N, _R, _P = 2**14, 8, 1
_SALT_BYTES = 16
_KEY_BYTES = 32
_MAXMEM = 64 * 1024 * 1024
MIN_LENGTH = 8


class PasswordError(ValueError):
    """A password that cannot be used; the message says why."""


def check_strength(password: str) -> None:
    """Refuse passwords that are too short or only whitespace.

    Raises:
        PasswordError: The password is not acceptable.
    """
    if len(password) < MIN_LENGTH:
        raise PasswordError(f"A password needs at least {MIN_LENGTH} characters")
    if not password.strip():
        raise PasswordError("A password cannot be only spaces")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=_KEY_BYTES
    )


def hash_password(password: str) -> str:
    """The stored form: `scrypt$N$r$p$salt$key`, salt and key in base64."""
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _derive(password, salt, _N, _R, _P)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches the stored hash; False for any malformed hash."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key)
        derived = _derive(password, base64.b64decode(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(derived, expected)


def burn_time(password: str) -> None:
    """Spend what a real check costs, so an unknown name takes as long as a wrong password."""
    _derive(password, b"\0" * _SALT_BYTES, _N, _R, _P)


def hash_fingerprint(stored: str) -> str:
    """A short digest of the stored hash; kept in the session so a password change ends
    every session signed in with the old one."""
    return hashlib.sha256(stored.encode("ascii")).hexdigest()[:16]
