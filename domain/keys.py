"""The key store: wrapped data keys and the key-encryption-key versions that wrap them.

Kept in tables of their own (not beside the data they protect) so they can be backed up on their
own, shorter schedule; see ADR 0006 and docs/encryption.md. Nothing here is secret on its own:
a wrapped key is useless without the key-encryption key, which never enters the database.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from domain.base import Base, Id, UTCDateTime, utcnow


class KeyVersion(Base):
    """A key-encryption-key version: its public check value, and when it was retired."""

    __tablename__ = "key_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    check_value: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DataKeyRecord(Base):
    """One data key, wrapped. ``owner`` names what it protects (``person:42``, ``family:7``);
    deleting the row crypto-shreds everything encrypted under it."""

    __tablename__ = "data_keys"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    owner: Mapped[str] = mapped_column(String(40), unique=True)
    suite: Mapped[int] = mapped_column(Integer)
    kek_version: Mapped[int] = mapped_column(Integer, index=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
