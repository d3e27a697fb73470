"""TOML reading for Python 3.9-3.13: ``tomllib`` (3.11+) or its backport ``tomli``."""

from __future__ import annotations

from typing import Any

try:
    import tomllib as _toml  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover - Python < 3.11
    import tomli as _toml  # type: ignore[import-not-found,no-redef,unused-ignore]

TOMLDecodeError: type[ValueError] = _toml.TOMLDecodeError

BOM = b"\xef\xbb\xbf"


class ByteOrderMark(TOMLDecodeError):  # type: ignore[valid-type,misc]
    """The text starts with a UTF-8 byte-order mark, which TOML does not allow."""

    def __init__(self) -> None:
        ValueError.__init__(
            self,
            "the file starts with a UTF-8 byte-order mark (BOM), which TOML does not allow: "
            "remove it (sed -i '1s/^\\xEF\\xBB\\xBF//' FILE)",
        )


def loads(text: str) -> dict[str, Any]:
    """Parse TOML text (raises :data:`TOMLDecodeError`)."""
    if text.startswith("\ufeff"):
        raise ByteOrderMark()
    result: dict[str, Any] = _toml.loads(text)
    return result


def load_bytes(data: bytes) -> dict[str, Any]:
    """Parse TOML from UTF-8 bytes (raises :data:`TOMLDecodeError` or UnicodeDecodeError)."""
    if data.startswith(BOM):
        raise ByteOrderMark()
    return loads(data.decode("utf-8"))
