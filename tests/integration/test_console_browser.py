"""The console page in headless Chromium (Debian ``chromium`` + ``chromium-driver``, selenium).

The test runs the real ``pipeline console`` process on the real broker. It installs Chromium
with apt-get when it runs as root and the browser is missing, and skips with the reason when it
can do neither. The screenshot is saved under ``tests/artifacts/`` (gitignored).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from pipeline._names import SCHEDULER_TOPIC
from tests.helpers import free_port, wait_until
from tests.integration.console_support import SCRIPT, TOKEN, World, make_world

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
PACKAGES = ["chromium", "chromium-driver"]


def _browser() -> tuple[str, str] | str:
    """``(chromium, chromedriver)`` paths, installing them if possible; else why not."""
    found = shutil.which("chromium"), shutil.which("chromedriver")
    if all(found):
        return found  # type: ignore[return-value]
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "chromium/chromium-driver are missing and this is not root with apt-get"
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", *PACKAGES]):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            return f"`{' '.join(cmd)}` failed: {done.stderr.strip()[-200:]}"
    found = shutil.which("chromium"), shutil.which("chromedriver")
    return found if all(found) else "apt-get installed no chromium"  # type: ignore[return-value]


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[dev]')")
    paths = _browser()
    if isinstance(paths, str):
        pytest.skip(paths)
    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000"):  # fmt: skip
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(paths[1]), options=options)
    browser.set_page_load_timeout(60)
    try:
        yield browser
    finally:
        browser.quit()


@pytest.fixture
def world(bootstrap_servers: str, unique: Callable[[str], str]) -> World:
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    admin.create_topics([NewTopic(SCHEDULER_TOPIC, 1)])[SCHEDULER_TOPIC].exception(30)  # or exists
    wait_until(lambda: SCHEDULER_TOPIC in admin.list_topics(timeout=10).topics)
    return make_world(bootstrap_servers, unique("console-ui"))


@pytest.fixture
def console_url(bootstrap_servers: str, world: World, tmp_path: Path) -> Iterator[str]:
    """The real ``pipeline console`` process, watching the test's group, once it is ready."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "PIPELINE_CONSOLE_TOKEN": TOKEN}
    log = (tmp_path / "console.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "--bootstrap-servers", bootstrap_servers, "console",
         "--port", str(port), "--refresh", "1", "--groups", f"^{world.group}$"],
        env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: proc.poll() is not None or _ready(url), timeout=60, interval=0.2)
        assert proc.poll() is None, (tmp_path / "console.log").read_text()
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.seek(0)
        output = log.read()
        log.close()
        assert TOKEN not in output  # the token is never printed
        assert "console on http://127.0.0.1:" in output


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def _enqueue_later(url: str) -> None:
    event = {
        "order_id": str(uuid.uuid4()), "customer_id": "c-1",
        "placed_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "items": [{"sku": "s", "quantity": 1, "unit_price": "1.00"}], "total": "1.00",
        "shipping_address": {"line1": "x", "city": "y", "postal_code": "1", "country": "FR"},
    }  # fmt: skip
    at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    request = urllib.request.Request(
        f"{url}/api/v1/events/orders.OrderPlaced",
        data=json.dumps({"event": event, "deliver_at": at}).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert json.load(answer)["scheduled"] is True


def _api_pending(url: str, group: str) -> int:
    with urllib.request.urlopen(f"{url}/api/v1/groups/{group}", timeout=10) as answer:
        return int(json.load(answer)["dlq_pending"])


def _text(driver: Any, css: str) -> str:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, css)
    return str(found[0].text) if found else ""


def test_lag_dead_letter_and_redrive_in_a_browser(
    driver: Any, console_url: str, world: World
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    row = f'#groups tr[data-group="{world.group}"]'
    driver.get(console_url + "/")
    wait_until(lambda: _text(driver, f'{row} [data-field="lag"]') == str(world.lag), timeout=30)
    assert int(_text(driver, f'{row} [data-field="lag"]')) > 0
    wait_until(lambda: _text(driver, f'{row} [data-field="dlq_pending"]') == "4", timeout=30)
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, f"{row} .spark canvas"), timeout=15)

    # Live refresh: a delayed event enqueued through the API shows in the scheduler backlog.
    before = int(_text(driver, "#scheduler-total") or 0)
    _enqueue_later(console_url)
    wait_until(lambda: _text(driver, "#scheduler-total") == str(before + 1), timeout=30)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(ARTIFACTS / "console-groups.png"))
    driver.find_element(By.LINK_TEXT, world.group).click()
    wait_until(lambda: _text(driver, "#dlq-pending") == "4", timeout=15)
    driver.find_element(By.LINK_TEXT, "0:3").click()  # the dead letter holding <script>
    wait_until(lambda: _text(driver, "#value") == SCRIPT, timeout=15)
    assert driver.execute_script("return window.pwned") is None  # shown, never run
    driver.back()

    driver.find_element(By.ID, "token").send_keys(TOKEN)
    button = driver.find_element(By.ID, "redrive-button")
    button.click()  # a dry run, then a confirmation dialog
    alert = WebDriverWait(driver, 30).until(expected_conditions.alert_is_present())
    assert "Redrive 4 dead letter(s)" in alert.text
    assert _api_pending(console_url, world.group) == 4  # the dry run sent nothing
    alert.dismiss()
    wait_until(lambda: "(cancelled)" in _text(driver, "#redrive-result"), timeout=15)
    assert "would redrive 4" in _text(driver, "#redrive-result")
    assert _text(driver, "#dlq-pending") == "4"
    button.click()
    WebDriverWait(driver, 30).until(expected_conditions.alert_is_present()).accept()
    wait_until(lambda: "redriven 4" in _text(driver, "#redrive-result"), timeout=60)
    wait_until(lambda: _text(driver, "#dlq-pending") == "0", timeout=30)  # the count drops
    shot = ARTIFACTS / "console-redrive.png"
    assert driver.save_screenshot(str(shot))
    print(f"screenshot: {shot}")
