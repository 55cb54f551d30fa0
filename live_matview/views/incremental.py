"""Incremental views: ``refresh_on`` as a dict ``{source model: "lookup__to__the_key"}``.

Each lookup is resolved here, once, into the join path a key-capture trigger follows from
a changed source row to the value of the view's primary key that the row feeds. Only
forward foreign keys (and one-to-ones) can be followed: they lead from one row to at most
one row, so one source row feeds at most one key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db import models

from .declaration import ViewDeclaration, ViewModel
from .registry import resolve_model

__all__ = [
    "Hop",
    "KeyPath",
    "LookupProblem",
    "is_incremental",
    "key_field",
    "key_paths",
    "resolve_lookup",
    "value_family",
]


class LookupProblem(ValueError):
    """A ``refresh_on`` lookup that cannot lead to the view's key; the text says why."""


def is_incremental(model: ViewModel) -> bool:
    """A dict ``refresh_on`` makes the view incremental (stored as a table, refreshed by key)."""
    return isinstance(model.refresh_on, Mapping)


@dataclass(frozen=True)
class Hop:
    """A join from the previous relation's ``from_column`` to ``model``'s ``to_column``."""

    model: type[models.Model]
    from_column: str
    to_column: str


@dataclass(frozen=True)
class KeyPath:
    """From a row of ``source``, through ``hops``, to ``column`` of the last relation."""

    source: type[models.Model]
    lookup: str
    hops: tuple[Hop, ...]
    column: str
    value_field: models.Field[Any, Any]

    @property
    def models(self) -> list[type[models.Model]]:
        """The models whose rows the path reads after the source's own row."""
        return [hop.model for hop in self.hops]


def _concrete_value_field(field: Any) -> Any:
    """The field that finally holds a foreign key's value (FK to FK to ... to a column)."""
    seen = 0
    while field.is_relation and seen < 20:
        field = field.target_field
        seen += 1
    return field


def _get_field(model: type[models.Model], part: str) -> Any:
    if part == "pk":
        return model._meta.pk
    try:
        return model._meta.get_field(part)
    except FieldDoesNotExist as exc:
        raise LookupProblem(f"{model._meta.label} has no field {part!r}") from exc


def _is_forward_single(field: Any) -> bool:
    return bool(
        field.is_relation
        and getattr(field, "concrete", False)
        and (field.many_to_one or field.one_to_one)
        and isinstance(getattr(field, "column", None), str)
    )


def resolve_lookup(source: type[models.Model], lookup: str) -> KeyPath:
    """The join path of ``lookup`` from ``source``; raises ``LookupProblem``."""
    if not isinstance(lookup, str) or not lookup:
        raise LookupProblem(f"the lookup must be a non-empty string, not {lookup!r}")
    parts = lookup.split("__")
    model = source
    hops: list[Hop] = []
    for index, part in enumerate(parts):
        field = _get_field(model, part)
        last = index == len(parts) - 1
        if field.is_relation and not _is_forward_single(field):
            raise LookupProblem(
                f"{model._meta.label}.{part} is a reverse or many-to-many relation: a key "
                "can only be reached through forward foreign keys"
            )
        if last:
            column = getattr(field, "column", None)
            if not isinstance(column, str):
                raise LookupProblem(f"{model._meta.label}.{part} has no column")
            return KeyPath(source, lookup, tuple(hops), column, _concrete_value_field(field))
        if not field.is_relation:
            raise LookupProblem(
                f"{model._meta.label}.{part} is not a relation, but the lookup goes on "
                f"after it ({'__'.join(parts[index + 1 :])!r})"
            )
        target = field.related_model
        hops.append(Hop(target, field.column, field.target_field.column))
        model = target
    raise AssertionError("unreachable")  # pragma: no cover


_FAMILIES = {
    "int": {
        "AutoField",
        "BigAutoField",
        "SmallAutoField",
        "IntegerField",
        "BigIntegerField",
        "SmallIntegerField",
        "PositiveIntegerField",
        "PositiveBigIntegerField",
        "PositiveSmallIntegerField",
    },
    "text": {"CharField", "TextField", "SlugField", "EmailField", "URLField"},
}


def value_family(field: Any) -> str:
    """Fields whose values compare in SQL and cast through text without loss share a family."""
    internal = _concrete_value_field(field).get_internal_type()
    for family, members in _FAMILIES.items():
        if internal in members:
            return family
    return str(internal)


def key_field(model: ViewModel) -> Any:
    """The view's declared single-column primary key; ``None`` when it has none."""
    pk = model._meta.pk
    if pk is None or pk.auto_created or not isinstance(getattr(pk, "column", None), str):
        return None
    return pk


def sources(model: ViewModel) -> list[tuple[Any, Any]]:
    """(resolved model or ``None``, lookup) per dict entry, in declaration order."""
    refresh_on = model.refresh_on
    assert isinstance(refresh_on, Mapping)
    return [(resolve_model(entry), lookup) for entry, lookup in refresh_on.items()]


def key_paths(model: ViewModel) -> list[KeyPath]:
    """The resolved paths of an incremental view; entries the checks reject are left out."""
    paths = []
    for source, lookup in sources(model):
        if source is None or issubclass(source, ViewDeclaration):
            continue
        try:
            paths.append(resolve_lookup(source, lookup))
        except LookupProblem:
            continue
    return paths
