"""System checks of incremental declarations (``live_matview.E101``..., ``W101``...).

``checks.py`` calls ``check_incremental(model)`` for every view; the messages live here,
beside the resolver whose errors they report.
"""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Warning

from .. import conf
from .declaration import ViewDeclaration, ViewModel
from .incremental import LookupProblem, is_incremental, key_field, resolve_lookup, sources
from .incremental import value_family as family


def check_incremental(model: ViewModel) -> list[CheckMessage]:
    if not is_incremental(model):
        return []
    label = model._meta.label
    messages: list[CheckMessage] = []
    key = key_field(model)
    if key is None:
        messages.append(
            Error(
                f"{label}.refresh_on is a dict (incremental refresh), but {label} declares no "
                "single-column primary key to refresh its rows by.",
                hint="Mark the field that holds each row's key with primary_key=True (its "
                "values must be unique in the query), or use a list for refresh_on.",
                obj=model,
                id="live_matview.E103",
            )
        )
    if conf.capture() == "signals":
        messages.append(
            Warning(
                f"{label} is incremental, but LIVE_MATVIEW_CAPTURE is 'signals': only "
                "triggers can see which keys a write touched, so it is refreshed fully "
                "after every write.",
                hint='Set LIVE_MATVIEW_CAPTURE = "triggers", or use a list for refresh_on.',
                obj=model,
                id="live_matview.W101",
            )
        )
    declared = {source for source, _lookup in sources(model) if source is not None}
    for source, lookup in sources(model):
        if source is None:
            continue  # reported by E002
        messages.extend(_check_entry(model, source, lookup, key, declared))
    return messages


def _check_entry(
    model: ViewModel, source: Any, lookup: Any, key: Any, declared: set[Any]
) -> list[CheckMessage]:
    label = model._meta.label
    if issubclass(source, ViewDeclaration):
        return [
            Error(
                f"{label}.refresh_on maps the view {source._meta.label} to a key: views "
                "cannot carry key triggers.",
                hint=f"Remove {source._meta.label} from the dict: a view built on another "
                "view is refreshed fully after it, without being named.",
                obj=model,
                id="live_matview.E104",
            )
        ]
    try:
        path = resolve_lookup(source, lookup)
    except LookupProblem as exc:
        return [
            Error(
                f"{label}.refresh_on[{source._meta.label}] = {lookup!r} does not resolve: {exc}.",
                hint=f"Give the ORM lookup from a {source._meta.label} row to the value of "
                f'{label}\'s primary key through forward foreign keys, e.g. "customer" or '
                '"order__customer" ("pk" for the row itself).',
                obj=model,
                id="live_matview.E101",
            )
        ]
    messages: list[CheckMessage] = []
    if key is not None and family(path.value_field) != family(key):
        messages.append(
            Error(
                f"{label}.refresh_on[{source._meta.label}] = {lookup!r} leads to a "
                f"{path.value_field.get_internal_type()}, which cannot be compared with "
                f"{label}'s primary key ({key.name}, {family(key)}).",
                hint="Point the lookup at the column whose values are the view's keys.",
                obj=model,
                id="live_matview.E102",
            )
        )
    for hop in path.hops:
        if hop.model not in declared:
            messages.append(
                Warning(
                    f"{label}.refresh_on[{source._meta.label}] = {lookup!r} reads "
                    f"{hop.model._meta.label} to find keys, but {hop.model._meta.label} is "
                    "not in refresh_on: a write there that moves rows to another key is "
                    "not seen.",
                    hint=f"Add {hop.model._meta.label} to the dict with the lookup from its "
                    "rows to the key.",
                    obj=model,
                    id="live_matview.W102",
                )
            )
    return messages
