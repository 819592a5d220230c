"""Signed access tokens: JWT (HS256) minted from the server secret.

Claims:

    sub    the user id (required); the actor recorded on every event the user writes
    name   the display name (optional; defaults to the user id)
    docs   {document id or fnmatch pattern: "read" | "write" | "admin"} (required)
    iat    when it was minted (seconds); a revocation refuses tokens minted before it
    exp    when it stops working (required): live connections are closed then (4403)

A token is a value: verifying it needs only the secret and the clock, no database.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.types import Options

from server.errors import Unauthorised

ALGORITHM = "HS256"
ROLES = ("read", "write", "admin")  # each includes the ones before it
MAX_TOKEN_CHARS = 8192  # a JWT past this is not ours; refuse it before decoding
MIN_SECRET_BYTES = 32  # HS256 with a shorter secret can be brute-forced from one token


def secret_problem(secret: str) -> str | None:
    """Why `secret` may not sign tokens, or None when it may."""
    size = len(secret.encode())
    if size < MIN_SECRET_BYTES:
        return (f"PALIMPSEST_SECRET is {size} bytes; it must be at least {MIN_SECRET_BYTES} "
                "(anyone holding one token could guess a shorter one offline and forge "
                "tokens). Generate one with: python3 -c 'import secrets; "
                "print(secrets.token_urlsafe(48))'")
    return None


@dataclass(frozen=True, slots=True)
class Claims:
    user_id: str
    display_name: str
    docs: dict[str, str]  # pattern -> role
    issued_at: float
    expires_at: float


def mint(secret: str, user_id: str, docs: dict[str, str], ttl: float, *,
         display_name: str | None = None, now: float | None = None) -> str:
    """A token for `user_id` with a role per document pattern, valid for `ttl` seconds."""
    if not user_id:
        raise ValueError("a token needs a user id")
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    for pattern, role in docs.items():
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r} for {pattern!r}; use one of {ROLES}")
    issued = time.time() if now is None else now
    payload: dict[str, Any] = {
        "sub": user_id,
        "name": display_name or user_id,
        "docs": docs,
        # Milliseconds, not whole seconds: a revocation must tell apart the tokens minted
        # just before it from those minted just after it.
        "iat": round(issued, 3),
        "exp": round(issued + ttl, 3),
    }
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def verify(token: str, secret: str, *, now: float | None = None) -> Claims:
    """The claims of a token signed with `secret`; Unauthorised if it is missing, malformed,
    forged or expired."""
    if not token:
        raise Unauthorised("missing token")
    if len(token) > MAX_TOKEN_CHARS:
        raise Unauthorised("malformed token: too long")
    # Expiry is checked here against the caller's clock (tests pass one), not PyJWT's.
    options: Options = {"require": ["sub", "exp", "docs"], "verify_exp": False}
    try:
        payload = jwt.decode(token, secret, algorithms=[ALGORITHM], options=options)
    except jwt.InvalidTokenError as exc:
        raise Unauthorised(f"invalid token: {exc}") from None
    claims = _claims(payload)
    if claims.expires_at <= (time.time() if now is None else now):
        raise Unauthorised("token expired")
    return claims


def _claims(payload: dict[str, Any]) -> Claims:
    user_id, docs = payload.get("sub"), payload.get("docs")
    name = payload.get("name") or user_id
    if not isinstance(user_id, str) or not user_id or not isinstance(name, str):
        raise Unauthorised("invalid token: bad subject")
    if not isinstance(docs, dict) or not all(
        isinstance(k, str) and v in ROLES for k, v in docs.items()
    ):
        raise Unauthorised("invalid token: bad document roles")
    try:
        issued = float(payload.get("iat", 0))
        expires = float(payload["exp"])
    except (TypeError, ValueError):
        raise Unauthorised("invalid token: bad times") from None
    return Claims(user_id, name, dict(docs), issued, expires)
