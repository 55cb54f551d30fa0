from django.apps import AppConfig


class LedgerConfig(AppConfig):
    name = "benchmarks.project.ledger"
    label = "benchledger"
