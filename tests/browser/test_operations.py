"""The Operations page in a real browser at 1280 and 390 px: this replica ready and live with its
heartbeat and clock offset, the uptime shards it holds with their fencing tokens, the consumers
and the outbox; reached from Settings; no sideways scroll on a phone."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser_support import Watched, assert_readable_time  # noqa: E402
from test_ui import log_in, shot  # noqa: E402


def wait_for_shards(server):
    """The lone replica claims the 16 uptime shards within its first beats."""
    import time
    deadline = time.time() + 20
    while time.time() < deadline:
        ops = server.api("/api/v1/operations")
        if sum(1 for lease in ops["leases"] if lease["owner_live"]) >= 16:
            return ops
        time.sleep(0.5)
    raise AssertionError(f"shards not claimed: {ops['leases']}")


def check_page(page, server, ops):
    page.goto(server.url + "/settings")
    with page.expect_navigation():
        page.click("#operations-link")
    assert page.url == server.url + "/operations"
    assert "ready" in page.inner_text("#readiness")
    replicas = page.inner_text("#replicas")
    assert ops["replica"] in replicas and "this one" in replicas and "live" in replicas, replicas
    assert "uptime shards" in replicas, replicas
    assert_readable_time(page.locator("#replicas time").first)
    leases = page.inner_text("#leases")
    assert "uptime.shard.0" in leases and "uptime.shard.15" in leases, leases
    assert "pending" in page.inner_text("#outbox")
    # Consumers appear once they first ran; the alerting one runs at start.
    assert "alerting.policies" in page.inner_text("#consumers")


def test_the_operations_page_at_1280_and_390(server, watched, browser):
    ops = wait_for_shards(server)
    page = watched.page
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, server.url)
    check_page(page, server, ops)
    shot(page, "operations-1280")
    assert not watched.problems, watched.problems

    phone = Watched(browser, viewport={"width": 390, "height": 844}, device_scale_factor=2,
                    is_mobile=True, has_touch=True)
    try:
        log_in(phone.page, server.url)
        check_page(phone.page, server, ops)
        overflow = phone.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"/operations scrolls sideways by {overflow}px on a phone"
        shot(phone.page, "operations-390")
        assert not phone.problems, phone.problems
    finally:
        phone.close()
