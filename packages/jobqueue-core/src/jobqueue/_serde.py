"""Serdes: how payloads and results become bytes. The envelope is not their business."""

from __future__ import annotations

import json
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import msgpack

from ._errors import SerializationError

__all__ = ["JsonSerde", "MsgpackSerde", "Serde"]

T = TypeVar("T")


@runtime_checkable
class Serde(Protocol[T]):
    """Turns values into bytes and back. Raise anything on failure; the core wraps it."""

    def serialize(self, value: T) -> bytes:
        """Encode ``value``."""
        ...

    def deserialize(self, data: bytes) -> T:
        """Decode bytes made by ``serialize``."""
        ...


_JSON_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)  # built once, not per call


class JsonSerde(Generic[T]):
    """UTF-8 JSON (the default). Strict: NaN and non-JSON types are refused."""

    def serialize(self, value: T) -> bytes:
        """Encode ``value`` as compact JSON."""
        try:
            return _JSON_ENCODER.encode(value).encode()
        except (TypeError, ValueError) as exc:
            raise SerializationError(f"JSON cannot encode {type(value).__name__}: {exc}") from exc

    def deserialize(self, data: bytes) -> T:
        """Decode JSON bytes."""
        try:
            value: T = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise SerializationError(f"invalid JSON ({len(data)} bytes): {exc}") from exc
        return value


class MsgpackSerde(Generic[T]):
    """msgpack: compact, and carries ``bytes`` as they are."""

    def serialize(self, value: T) -> bytes:
        """Encode ``value`` with msgpack."""
        try:
            data: bytes = msgpack.packb(value, use_bin_type=True)
        except (TypeError, ValueError, OverflowError) as exc:
            raise SerializationError(f"msgpack cannot encode {type(value).__name__}: {exc}") from exc
        return data

    def deserialize(self, data: bytes) -> T:
        """Decode msgpack bytes."""
        try:
            value: T = msgpack.unpackb(data, raw=False, strict_map_key=False)
        except Exception as exc:
            raise SerializationError(f"invalid msgpack ({len(data)} bytes): {exc}") from exc
        return value


def dumps(serde: Serde[Any], value: Any, what: str, *args: object) -> bytes:
    """Serialize with any serde, wrapping its failures in ``SerializationError`` naming ``what % args``.

    ``args`` are formatted only on failure (``%``-style, as logging does): this runs once per job.
    """
    try:
        data = serde.serialize(value)
    except SerializationError as exc:
        raise SerializationError(f"{_name(what, args)}: {exc}") from exc
    except Exception as exc:
        raise SerializationError(
            f"{_name(what, args)} cannot be serialized: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(data, bytes):
        raise SerializationError(f"{_name(what, args)}: serde returned {type(data).__name__}, not bytes")
    return data


def loads(serde: Serde[Any], data: bytes, what: str, *args: object) -> Any:
    """Deserialize with any serde, wrapping its failures in ``SerializationError`` naming ``what % args``."""
    try:
        return serde.deserialize(data)
    except SerializationError as exc:
        raise SerializationError(f"{_name(what, args)}: {exc}") from exc
    except Exception as exc:
        raise SerializationError(
            f"{_name(what, args)} cannot be deserialized: {type(exc).__name__}: {exc}"
        ) from exc


def _name(what: str, args: tuple[object, ...]) -> str:
    return what % args if args else what
