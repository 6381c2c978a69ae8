"""API keys: several keys, from settings or a file, compared in constant time, never logged."""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from pathlib import Path

from server.errors import ApiError, ErrorKind
from server.settings import Settings

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="sidetask"'}


def read_keys_file(path: Path) -> list[str]:
    """One key per line; blank lines and ``#`` comments are ignored."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key from ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


def _matches(candidate: bytes, keys: Iterable[bytes]) -> bool:
    found = False
    for key in keys:  # no early exit: time does not depend on which key matched
        found |= hmac.compare_digest(candidate, key)
    return found


class KeyChecker:
    """Checks request headers against the configured keys; open when none are configured."""

    def __init__(self, api_keys: Iterable[str], admin_keys: Iterable[str] = ()) -> None:
        self._api = [k.encode() for k in dict.fromkeys(api_keys) if k]
        admin = [k.encode() for k in dict.fromkeys(admin_keys) if k]
        self._admin = admin or self._api

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyChecker:
        keys = list(settings.api_keys)
        if settings.api_keys_file is not None:
            keys += read_keys_file(settings.api_keys_file)
        return cls(keys, settings.admin_keys)

    @property
    def enabled(self) -> bool:
        return bool(self._api or self._admin)

    def __repr__(self) -> str:  # keys never reach a log line
        return f"KeyChecker(api={len(self._api)} keys, admin={len(self._admin)} keys)"

    def check(self, headers: Mapping[str, str], admin: bool = False) -> None:
        """Raise 401 (missing/wrong key) or 403 (valid key, but not an admin key)."""
        if not self.enabled:
            return
        key = presented_key(headers)
        if key is None:
            raise ApiError(ErrorKind.UNAUTHORIZED, "an API key is required", headers=_CHALLENGE)
        candidate = key.encode("utf-8", "surrogateescape")
        if admin:
            if _matches(candidate, self._admin):
                return
            if _matches(candidate, self._api):
                raise ApiError(ErrorKind.FORBIDDEN, "this key may not call admin routes")
            raise ApiError(ErrorKind.UNAUTHORIZED, "invalid API key", headers=_CHALLENGE)
        if not _matches(candidate, [*self._api, *self._admin]):
            raise ApiError(ErrorKind.UNAUTHORIZED, "invalid API key", headers=_CHALLENGE)
