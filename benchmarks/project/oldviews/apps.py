from django.apps import AppConfig


class OldViewsConfig(AppConfig):
    name = "benchmarks.project.oldviews"
    label = "benchviews"
