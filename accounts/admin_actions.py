"""Every admin action needs a permission beyond reading the page it is on."""

from __future__ import annotations

from django.contrib.admin import AdminSite


def guard_unguarded_actions(site: AdminSite) -> list[str]:
    """Make every action of ``site`` that names no permission need the model's change
    permission, and return the actions so guarded ("app.Model.action").

    Django runs an action for anyone who may see its list (view permission) unless the
    action names permissions; some libraries' admins leave theirs open (django-celery-beat's
    "Run selected tasks", django-axes' clean-up). The project's own actions name theirs.
    """
    guarded = []
    for model, model_admin in site._registry.items():
        # The actions before any request filters them (Django keeps no public name for it).
        for func, name, _description in model_admin._get_base_actions():  # type: ignore[attr-defined]
            if not getattr(func, "allowed_permissions", None):
                func.allowed_permissions = ("change",)
                guarded.append(f"{model._meta.label}.{name}")
    return guarded
