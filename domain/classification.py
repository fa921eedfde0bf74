"""Field classes: the unit of disclosure.

Every attribute of a protected model that the API can expose is put in exactly one class, on the
column itself (``info={"field_class": ...}``) or, for derived values, in the model's
``derived_field_classes``. The privacy policy grants classes, never individual columns, so a new
column is withheld until someone classifies it (and the architecture tests fail until they do).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import class_mapper


class FieldClass(StrEnum):
    BASIC = "basic"
    IDENTITY = "identity"
    ID_NUMBER = "id_number"
    CONTACT = "contact"
    SENSITIVE_CATEGORY = "sensitive_category"
    CLINICAL = "clinical"
    CASE_ADMIN = "case_admin"
    NARRATIVE = "narrative"
    FAMILY_CIRCUMSTANCE = "family_circumstance"
    AUDIT = "audit"
    """Access-log records: who saw what. Not personal case content; auditors read it."""
    SECRET = "secret"  # noqa: S105 - the name of a field class, not a password
    """Credential hashes: never disclosed to anyone (no policy line may grant it)."""


def classified(field_class: FieldClass) -> dict[str, Any]:
    """The ``info`` mapping for a column of this class (``mapped_column(..., info=...)``)."""
    return {"field_class": field_class}


_FIELD_CLASSES: dict[type, Mapping[str, FieldClass]] = {}


def field_classes(model: type) -> Mapping[str, FieldClass]:
    """Attribute name → field class for every classified attribute of ``model`` (a mapped
    class), computed once per class."""
    cached = _FIELD_CLASSES.get(model)
    if cached is not None:
        return cached
    result: dict[str, FieldClass] = {}
    for attr in class_mapper(model).column_attrs:
        field_class = attr.columns[0].info.get("field_class")
        if field_class is not None:
            result[attr.key] = field_class
    result.update(getattr(model, "derived_field_classes", {}))
    _FIELD_CLASSES[model] = result
    return result


def written_fields(row: object) -> list[str]:
    """Names of a row's classified attributes that hold a value (what a write event names;
    never the values)."""
    return [n for n in field_classes(type(row)) if not n.startswith("_") and _has(row, n)]


def _has(row: object, name: str) -> bool:
    try:
        value = getattr(row, name)
    except AttributeError:
        return False
    return value not in (None, [], "")
