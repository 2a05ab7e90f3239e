from django.apps import AppConfig


class ReconciliationConfig(AppConfig):
    name = "reconciliation"
    verbose_name = "Reconciliation"

    def ready(self) -> None:
        # channels.alerts watches the conditions; accuracy is reconciliation's figure.
        from channels import alerts as channel_alerts
        from reconciliation import alerts

        channel_alerts.register_condition(alerts.accuracy_under_target)
