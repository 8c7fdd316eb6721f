"""Tables. Per-person data is a pseudonym, day-granular dates and one sealed record."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ColumnElement, Date, DateTime, Integer, LargeBinary, MetaData, SQLColumnExpression, func
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from storage.crypto import DecryptionError, sealed_key_id

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class SealedBytes(TypeDecorator[bytes]):
    """A column that accepts only values sealed by KeyRing.seal, so plaintext cannot slip in."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> bytes | None:
        if value is None:
            return None
        if not isinstance(value, bytes):
            raise TypeError("a sealed column takes the bytes returned by KeyRing.seal")
        try:
            sealed_key_id(value)
        except DecryptionError as exc:
            raise TypeError("refusing to store a value that was not sealed") from exc
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> bytes | None:
        return None if value is None else bytes(value)


def sealed_with_key(column: SQLColumnExpression[bytes] | SQLColumnExpression[bytes | None], key_id: int) -> ColumnElement[bool]:
    """SQL: the sealed value in ``column`` was made with data key ``key_id``.

    The key id is bytes 2-5 of a sealed value (storage.crypto's format).
    """
    return func.substr(column, 2, 4) == key_id.to_bytes(4, "big")


class DataKey(Base):
    """A data-encryption key, wrapped by the key-encryption key derived from the master key."""

    __tablename__ = "data_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # Set when a newer key takes over; the key stays readable until no row uses it.
    retired_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Person(Base):
    """One consenting person: pseudonym, last active day, everything else sealed."""

    __tablename__ = "persons"

    pseudonym: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    last_active_on: Mapped[dt.date] = mapped_column(Date, nullable=False, index=True)
    record: Mapped[bytes] = mapped_column(SealedBytes, nullable=False)


class ProcessedUpdate(Base):
    """An inbound update already handled, so a redelivery is not answered twice.

    The key is a keyed hash of channel and update id; rows expire after a few days.
    """

    __tablename__ = "processed_updates"

    key: Mapped[bytes] = mapped_column(LargeBinary(16), primary_key=True)
    seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, index=True)
