"""Dashboards in a real browser, fed by the real OpenTelemetry Python SDK: the golden-signals pack
installed from the offer on the Dashboards page; the service overview's billboards, charts and
table over what the SDK sent; a facet filter and the time picker; the database dashboard's
statements; the YAML editor refusing a broken query with its place; no console error."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_performance import send_traffic, wait_services  # noqa: E402
from test_ui import log_in, shot  # noqa: E402


def seconds(text):
    """A billboard's duration as people read it ("240 ms", "1.25 s") in seconds."""
    value, unit = text.split()
    return float(value.replace(",", "")) / (1000 if unit == "ms" else 1)


def billboard(page, title):
    return page.locator(f"section.widget:has(h2:text-is('{title}')) .billboard")


def test_pack_dashboards_filters_and_editor(server, watched):
    send_traffic(server)
    wait_services(server, ["shop", "payments"])
    page = watched.page
    page.set_viewport_size({"width": 1400, "height": 1000})
    log_in(page, server.url)

    page.goto(server.url + "/dashboards")
    assert page.locator("#no-dashboards").count() == 1
    with page.expect_navigation():
        page.click("#pack-offer button")
    assert "Installed: 8 alert policies, 8 runbooks, 4 dashboards." in page.inner_text("#message")
    assert page.locator("#pack-offer").count() == 0, "offered until installed"
    names = page.locator("#dashboards a").all_inner_texts()
    assert sorted(names) == ["Database", "Errors", "Service overview", "Uptime"], names

    page.click("#dashboards a:text-is('Service overview')")
    errors = billboard(page, "Error rate")
    assert errors.locator("strong").inner_text() == "0 %" and errors.get_attribute("data-state") == "ok"
    # 24 requests: shop's take 240 ms, payments' 37 ms.
    # Durations read in milliseconds, not NRQL's raw seconds.
    p95 = billboard(page, "p95")
    assert p95.locator("strong").inner_text().endswith(" ms"), p95.inner_text()
    assert abs(seconds(p95.locator("strong").inner_text()) - 0.24) < 0.01
    assert page.locator("#widgets figure.chart svg").count() >= 3
    slowest = page.inner_text("section.widget:has(h2:text-is('Slowest transactions'))")
    assert "shop" in slowest and "POST /checkout" in slowest, slowest
    shot(page, "dashboard-service-overview")

    # The facet filter: payments only.
    page.select_option("#filters select[name='f.appName']", "payments")
    with page.expect_navigation():
        page.click("#filters button")
    assert seconds(billboard(page, "p95").locator("strong").inner_text()) < 0.1
    page.click("#ranges a:text-is('6 hours')")
    assert "range=6h" in page.url and "f.appName=payments" in page.url
    assert seconds(billboard(page, "p95").locator("strong").inner_text()) < 0.1

    page.goto(server.url + "/dashboards/database")
    statements = page.inner_text("section.widget:has(h2:text-is('Statements by total time'))")
    assert "SELECT * FROM carts WHERE id = ?" in statements, statements

    # The editor: a broken query is refused with its place; the dashboard is unchanged.
    page.goto(server.url + "/dashboards/service-overview/edit")
    yaml = page.input_value("#edit textarea")
    assert yaml.startswith("name: Service overview")
    page.fill("#edit textarea", yaml.replace("SELECT apdex(duration, t: 0.5) FROM Transaction", "SELECT apdex(duration FROM Transaction"))
    with page.expect_navigation():
        page.click("#edit button")
    assert "line 1, column" in page.inner_text("#edit-error")
    page.goto(server.url + "/dashboards/service-overview")
    assert billboard(page, "Apdex").count() == 1
    assert watched.problems == [], "\n".join(watched.problems)
