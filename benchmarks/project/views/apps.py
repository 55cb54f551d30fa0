from django.apps import AppConfig


class ViewsConfig(AppConfig):
    name = "benchmarks.project.views"
    label = "benchviews"
