"""Django admin: the refresh log, read only, the managed views with a "Refresh now" action,
and ``MaterializedViewAdmin`` for projects to register their view models with.

Imported only by the admin's autodiscovery (or a project's own ``admin.py``), so projects
without ``django.contrib.admin`` never load it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.contrib import admin, messages
from django.db.models import Count, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.text import Truncator, capfirst
from django.utils.translation import ngettext

from .exceptions import LiveMatviewError, RefreshError
from .models import DirtyMark, KeyMark, ManagedView, MaterializedViewRefreshLog
from .refresh.full import Skipped, refresh_view
from .schema.database_graph import database_graph
from .views.declaration import ViewDeclaration, ViewModel

if TYPE_CHECKING:
    from django.db.models import QuerySet
    from django.http import HttpRequest


def _seconds(duration: timedelta) -> str:
    seconds = duration.total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"


class _ReadOnlyAdmin(admin.ModelAdmin):
    """Rows are shown, never added, edited or deleted: views and the log are written by
    the library only."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(MaterializedViewRefreshLog)
class MaterializedViewRefreshLogAdmin(_ReadOnlyAdmin):
    """Every refresh attempt, for reading only: the log is written by refreshes alone."""

    # Seven columns beside the filters and the navigation sidebar must fit 1280 px: the
    # mode shares the outcome's column, and the end time wraps between date and time.
    list_display = (
        "view_name",
        "ended",
        "took",
        "trigger",
        "outcome",
        "short_error",
    )
    list_filter = ("failed", "trigger", "view_name")
    search_fields = ("view_name", "error")
    date_hierarchy = "updated_at"
    show_full_result_count = False  # the log grows without bound: one COUNT(*) per page is enough

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        # The model's own plural names it everywhere (index, breadcrumbs, this title).
        return super().changelist_view(
            request, {"title": _plural(self.model), **(extra_context or {})}
        )

    @admin.display(description="took", ordering="duration")
    def took(self, log: MaterializedViewRefreshLog) -> str:
        return "-" if log.duration is None else _seconds(log.duration)

    @admin.display(description="ended", ordering="updated_at")
    def ended(self, log: MaterializedViewRefreshLog) -> str:
        return timezone.localtime(log.updated_at).strftime("%Y-%m-%d %H:%M:%S")

    # Words, not boolean icons: a green tick for a failure, or a red cross for a plain
    # refresh, would be read the wrong way round.
    @admin.display(description="outcome", ordering="failed")
    def outcome(self, log: MaterializedViewRefreshLog) -> str:
        if log.failed:
            return "failed"
        if log.concurrently is None:
            return "ok"
        return "ok, concurrently" if log.concurrently else "ok, plain"

    @admin.display(description="error")
    def short_error(self, log: MaterializedViewRefreshLog) -> str:
        # Short enough that the list fits 1280 px beside its filters; the row has it all.
        first_line = log.error.strip().split("\n", 1)[0]
        return Truncator(first_line).chars(48)


@admin.register(ManagedView)
class ManagedViewAdmin(admin.ModelAdmin):
    """The views ``migrate_with_views`` manages, with their refresh state.

    Rows are maintained by ``migrate_with_views`` and by refreshes, so nothing here edits
    them. "Refresh now" needs the change permission on managed views.
    """

    list_display = (
        "view_name",
        "model_label",
        "last_refreshed_at",
        "consecutive_failures",
        "next_retry_at",
        "pending_marks",
    )
    search_fields = ("view_name", "app_label", "model_name")
    actions = ("refresh_now",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[ManagedView]:
        def pending(table: type[DirtyMark] | type[KeyMark], count: Count) -> Coalesce:
            counts = (
                table.objects.filter(view_name=OuterRef("view_name"))
                .order_by()
                .values("view_name")
                .annotate(count=count)
                .values("count")
            )
            return Coalesce(Subquery(counts, output_field=IntegerField()), Value(0))

        return (
            super()
            .get_queryset(request)
            .annotate(
                marks=pending(DirtyMark, Count("id")),
                keys=pending(KeyMark, Count("key", distinct=True)),  # distinct keys waiting
            )
        )

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        title = {"title": _plural(self.model)}
        return super().changelist_view(request, {**title, **(extra_context or {})})

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in self.model._meta.fields] + ["pending_marks", "refreshes"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A row is never edited; the model-level permission is kept because it is
        # the one "Refresh now" asks for.
        return obj is None and super().has_change_permission(request)

    @admin.display(description="model")
    def model_label(self, view: ManagedView) -> str:
        return f"{view.app_label}.{view.model_name}"

    @admin.display(description="pending marks", ordering="marks")
    def pending_marks(self, view: ManagedView) -> str:
        """Marks, and for an incremental view the keys waiting for a by-key refresh."""
        marks, keys = int(getattr(view, "marks", 0)), int(getattr(view, "keys", 0))
        return f"{marks} + {keys} keys" if keys else str(marks)

    @admin.display(description="refresh log")
    def refreshes(self, view: ManagedView) -> str:
        url = reverse(f"{self.admin_site.name}:live_matview_materializedviewrefreshlog_changelist")
        return format_html(
            '<a href="{}?{}">Refreshes of {}</a>',
            url,
            urlencode({"view_name": view.view_name}),
            view,
        )

    @admin.action(description="Refresh now", permissions=["change"])
    def refresh_now(self, request: HttpRequest, queryset: QuerySet[ManagedView]) -> None:
        """Refresh the selected views, parents before children, in the admin's database."""
        found: list[ViewModel] = []
        for view in queryset:
            model = _view_model(view)
            if model is None:
                self.message_user(
                    request,
                    f"{view.view_name}: no view model {view.app_label}.{view.model_name} is "
                    "installed; run ./manage.py migrate_with_views to drop its view.",
                    messages.ERROR,
                )
            else:
                found.append(model)
        refresh_models(self, request, found, queryset.db)


class MaterializedViewAdmin(_ReadOnlyAdmin):
    """A read-only admin for a view model, with a "Refresh now" action. Register your views
    with it (``admin.site.register(CustomerTotals, MaterializedViewAdmin)``) or subclass it.

    A view's rows are its query's: nothing can be added, changed or deleted here. "Refresh
    now" refreshes the whole view, whichever rows are selected, and needs the change
    permission on managed views, like the action on that list.
    """

    actions = ("refresh_now",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in self.model._meta.fields]

    def has_refresh_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("live_matview.change_managedview"))

    @admin.action(description="Refresh now (the whole view)", permissions=["refresh"])
    def refresh_now(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        refresh_models(self, request, [self.model], queryset.db)


def refresh_models(
    model_admin: admin.ModelAdmin, request: HttpRequest, found: list[ViewModel], using: str
) -> None:
    """Refresh ``found`` in ``using``, parents first; one message per outcome."""
    if not found:
        return
    try:
        ordered = database_graph(using).order(found)
    except LiveMatviewError as exc:
        model_admin.message_user(request, str(exc), messages.ERROR)
        return
    for model in sorted(set(found) - set(ordered), key=lambda m: m._meta.label_lower):
        model_admin.message_user(
            request,
            f"{model._meta.label}: the database routers do not place it in "
            f"database {using!r}, so it was not refreshed there.",
            messages.ERROR,
        )
    done: list[str] = []
    for model in ordered:
        try:
            log = refresh_view(model, using=using, trigger="admin", wait=False)
        except RefreshError as exc:
            model_admin.message_user(request, str(exc), messages.ERROR)
            continue
        if log is Skipped.BUSY:
            model_admin.message_user(
                request,
                f"{model._meta.db_table}: another process is refreshing it right now.",
                messages.WARNING,
            )
        elif not isinstance(log, Skipped):
            mode = "concurrently" if log.concurrently else "plainly"
            done.append(f"{model._meta.db_table} {mode}")
    if done:
        model_admin.message_user(
            request,
            ngettext(
                "Refreshed %(count)d view: %(views)s.",
                "Refreshed %(count)d views: %(views)s.",
                len(done),
            )
            % {"count": len(done), "views": ", ".join(done)},
            messages.SUCCESS,
        )


def _plural(model: Any) -> str:
    return capfirst(str(model._meta.verbose_name_plural))


def _view_model(view: ManagedView) -> ViewModel | None:
    """The installed view model a row names, or ``None`` once its model is gone."""
    try:
        model = apps.get_model(view.app_label, view.model_name)
    except LookupError:
        return None
    if not issubclass(model, ViewDeclaration):
        return None
    return model
