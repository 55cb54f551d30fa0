from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "benchmarks.project.shop"
    label = "benchshop"
