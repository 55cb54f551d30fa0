"""The admin end to end, in a real headless Chromium: log in, "Refresh now", see the log row.

Drives Debian's ``chromium`` through its ``chromedriver`` (packages ``chromium`` and
``chromium-driver``) with Selenium, given the driver's path so that Selenium never tries to
download one. Skipped when they are missing, unless LIVE_MATVIEW_REQUIRE_BROWSER is set
(CI sets it). With LIVE_MATVIEW_DOCS_SCREENSHOTS=1 it saves the screenshots the docs show to
docs/img/.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings
from django.test.utils import override_settings

from live_matview import RefreshError
from live_matview.models import DirtyMark, ManagedView, MaterializedViewRefreshLog
from live_matview.refresh.full import refresh_view
from live_matview.views.registry import view_models
from tests.testapp.models import (
    Customer,
    CustomerTotals,
    IndexedOrders,
    Item,
    ItemSales,
    Order,
    OrderItemStats,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# The docs' screenshots are taken on request only (LIVE_MATVIEW_DOCS_SCREENSHOTS=1): a test
# run must not rewrite tracked files. Otherwise they go to a scratch directory.
DOCS_IMAGES = Path(__file__).resolve().parent.parent / "docs" / "img"
PASSWORD = "correct horse battery staple"


def _missing() -> list[str]:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    return missing


@pytest.fixture
def browser(tmp_path):
    missing = _missing()
    if missing:
        if os.environ.get("LIVE_MATVIEW_REQUIRE_BROWSER"):
            pytest.fail(f"{', '.join(missing)} missing, and LIVE_MATVIEW_REQUIRE_BROWSER is set.")
        pytest.skip(
            f"{', '.join(missing)} missing: apt-get install chromium chromium-driver "
            "and pip install selenium to run the browser test."
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "--window-size=1440,860",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


@pytest.fixture
def shop():
    """Some data and history, so that the screenshots show what the admin is for."""
    for model in view_models():
        ManagedView.objects.get_or_create(
            view_name=model._meta.db_table,
            defaults={"app_label": model._meta.app_label, "model_name": model._meta.model_name},
        )
    # Writes leave marks and nothing refreshes them until the admin does.
    with override_settings(LIVE_MATVIEW_REFRESH_MODE="manual"):
        for name, amounts in [("Ada", [120, 35]), ("Grace", [80]), ("Linus", [15, 15, 40])]:
            customer = Customer.objects.create(name=name)
            for amount in amounts:
                order = Order.objects.create(customer=customer, amount=amount)
                Item.objects.create(order=order, sku="TEA", quantity=2)
        # Two huge quantities overflow ItemSales' integer column: a failing view.
        Item.objects.create(order=order, sku="GOLD", quantity=2_000_000_000)
        Item.objects.create(order=order, sku="GOLD", quantity=2_000_000_000)
    for model in (OrderItemStats, IndexedOrders):
        refresh_view(model, trigger="command")
    with pytest.raises(RefreshError):
        refresh_view(ItemSales, trigger="command")


def _require_static_files() -> None:
    if "django.contrib.staticfiles" not in settings.INSTALLED_APPS or not settings.STATIC_URL:
        pytest.fail(
            "The live server serves the admin's CSS only with django.contrib.staticfiles in "
            "INSTALLED_APPS and STATIC_URL set: add both to tests/settings_base.py."
        )


@pytest.mark.usefixtures("shop")
def test_refresh_now_in_the_browser(browser, live_server, django_user_model, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _require_static_files()
    django_user_model.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    assert DirtyMark.objects.filter(view_name="testapp_customertotals").exists()

    browser.get(f"{live_server.url}/admin/")
    browser.find_element(By.ID, "id_username").send_keys("admin")
    browser.find_element(By.ID, "id_password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "#login-form [type=submit]").click()
    assert "admin" in browser.find_element(By.ID, "user-tools").text.lower()
    assert browser.execute_script(
        "return [...document.styleSheets].some("
        "  s => (s.href || '').endsWith('/admin/css/base.css') && s.cssRules.length > 0)"
    ), "the admin's CSS did not load"

    browser.get(f"{live_server.url}/admin/live_matview/managedview/")
    browser.find_element(By.ID, "toggle-nav-sidebar").click()  # room for the columns
    row = "//table[@id='result_list']//tr[.//a[text()='testapp_customertotals']]"
    browser.find_element(By.XPATH, f"{row}//input[@name='_selected_action']").click()
    Select(browser.find_element(By.NAME, "action")).select_by_value("refresh_now")
    browser.find_element(By.CSS_SELECTOR, "button[name=index]").click()

    success = browser.find_element(By.CSS_SELECTOR, ".messagelist .success")
    assert success.text.startswith("Refreshed 1 view: testapp_customertotals")
    marks = browser.find_element(By.XPATH, f"{row}/td[contains(@class, 'field-pending_marks')]")
    assert marks.text == "0"
    assert list(CustomerTotals.objects.order_by("total").values_list("total", flat=True)) == [
        70,
        80,
        155,
    ]
    screenshots = DOCS_IMAGES if os.environ.get("LIVE_MATVIEW_DOCS_SCREENSHOTS") else tmp_path
    browser.save_screenshot(str(screenshots / "admin-views.png"))

    browser.get(f"{live_server.url}/admin/live_matview/materializedviewrefreshlog/")
    newest = browser.find_element(By.XPATH, "//table[@id='result_list']/tbody/tr[1]")
    assert newest.find_element(By.CSS_SELECTOR, ".field-view_name").text == (
        "testapp_customertotals"
    )
    assert newest.find_element(By.CSS_SELECTOR, ".field-trigger").text == "admin"
    assert newest.find_element(By.CSS_SELECTOR, ".field-outcome").text == "ok, concurrently"
    browser.save_screenshot(str(screenshots / "admin-refresh-log.png"))

    # On a 1280 px screen, with the navigation sidebar open (the admin's default), the
    # log's columns, a failure's error among them, fit beside the filters: no scrolling.
    browser.set_window_size(1280, 860)
    browser.execute_script("localStorage.setItem('django.admin.navSidebarIsOpen', 'true')")
    browser.get(f"{live_server.url}/admin/live_matview/materializedviewrefreshlog/")
    errors = browser.find_elements(By.CSS_SELECTOR, ".field-short_error")
    assert any(error.text for error in errors)  # ItemSales' failure is on the page
    assert browser.execute_script("return window.innerWidth") <= 1280
    overflow = browser.execute_script(
        "const results = document.querySelector('#changelist .results');"
        "return [document.documentElement.scrollWidth - document.documentElement.clientWidth,"
        "        results.scrollWidth - results.clientWidth];"
    )
    assert overflow == [0, 0], f"the refresh log scrolls sideways by {overflow} px at 1280 px"

    log = MaterializedViewRefreshLog.objects.first()
    assert log is not None
    assert (log.view_name, log.trigger, log.failed) == ("testapp_customertotals", "admin", False)
