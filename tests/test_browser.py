"""The demo's report in a real browser (headless Chromium through selenium and Debian's chromedriver).

One quick demo run (``rnnlab demo --quick``, seconds) feeds every test here. The browser tests are
skipped, with the reason, where Chromium, its driver or selenium is missing (.ci/run installs them).
Set RNNLAB_SCREENSHOT=path to keep the screenshot somewhere (docs/report.png was made that way).
"""
import json
import os
import re
import shutil
import struct
from pathlib import Path

import pytest

from rnnlab.cli import main

CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1280,1000"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Run ``rnnlab demo --quick`` once; add a forecast run so that every kind of section is on a page."""
    import torch

    out = tmp_path_factory.mktemp("demo") / "run"
    threads = torch.get_num_threads()
    try:
        import contextlib
        import io

        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            code = main(["demo", "--quick", "--no-progress", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    forecast = out.parent / "forecast"
    forecast.mkdir()
    (forecast / "run.json").write_text(json.dumps({"format": "rnnlab-run", "version": 1, "kind": "forecast",
                                                   "created": "2026-01-01T00:00:00+00:00", "config": {}}))
    rows = ["time,y,y_lower,y_upper"] + [f"2026-01-{t + 1:02d},{t % 7 + 0.5},{t % 7 - 1},{t % 7 + 2}" for t in range(10)]
    (forecast / "forecast.csv").write_text("\n".join(rows) + "\n")
    assert main(["report", str(forecast)]) == 0
    return code, buffer.getvalue(), out, forecast / "report.html"


def test_demo_quick_prints_summary_and_writes_report(demo):
    code, printed, out, _ = demo
    assert code == 0
    assert "Held-out accuracy on the long-gap cue task" in printed and "Next-word guesses" in printed
    assert re.search(r"lstm\s+[0-9.]+\s+[0-9.]+", printed)
    report = Path(printed.strip().splitlines()[-1].split("Report: ")[1])
    assert report == out / "report.html" and report.stat().st_size > 10_000
    info = json.loads((out / "run.json").read_text())
    assert info["kind"] == "demo" and info["parts"] == [["lab", "lab"], ["gradflow", "gradflow"], ["lm", "lm"]]
    for part in ("lab", "gradflow", "lm"):
        assert json.loads((out / part / "run.json").read_text())["kind"] in ("lab", "lm")


def test_demo_refuses_an_occupied_out_dir(demo, capsys):
    _, _, out, _ = demo
    before = (out / "run.json").read_text()
    assert main(["demo", "--quick", "--no-progress", "--out", str(out)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (out / "run.json").read_text() == before


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    missing = [str(p) for p in (CHROMIUM, DRIVER) if not p.exists()]
    if missing:
        pytest.skip(f"headless browser test needs Debian's chromium and chromium-driver; missing {', '.join(missing)} "
                    f"(apt-get install chromium chromium-driver; .ci/run does)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS + [f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def open_page(driver, path: Path) -> list:
    driver.get(path.resolve().as_uri())
    assert driver.execute_script("return document.body.dataset.rendered") == "yes"  # the script ran to its end
    return [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]


def check_charts(driver) -> int:
    """Every chart has an SVG with at least one drawn line of >= 2 points and a non-zero size."""
    charts = driver.find_elements("css selector", ".chart[data-chart]")
    for chart in charts:
        svg = chart.find_element("css selector", "svg")
        assert svg.size["width"] > 100 and svg.size["height"] > 50
        paths = [p.get_attribute("d") for p in chart.find_elements("css selector", "path.series")]
        points = [d.count("L") + 1 for d in paths if d]
        circles = chart.find_elements("css selector", "circle")
        assert max(points, default=0) >= 2 or circles, f"empty chart: {chart.get_attribute('outerHTML')[:300]}"
    return len(charts)


def test_demo_report_renders_in_chromium(demo, browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import Select

    _, _, out, _ = demo
    page = out / "report.html"
    assert open_page(browser, page) == []
    html = page.read_text()
    sections = re.findall(r'<section id="([^"]+)"', html)
    for expected in ("overview", "lab-curves", "lab-gap", "lab-steps", "gradflow-gradflow", "lm-curves", "lm-gates", "lm-next"):
        assert expected in sections
    for section in sections:
        element = browser.find_element("id", section)
        assert element.is_displayed() and element.size["height"] > 20
    assert check_charts(browser) >= 5
    assert browser.execute_script(
        "return [...document.images].every(img => img.complete && img.naturalWidth > 0)")

    viewer = browser.find_element("css selector", ".gates")
    spans = viewer.find_elements("css selector", ".passage span")
    assert len(spans) > 100
    colours = lambda: browser.execute_script(  # noqa: E731
        "return [...document.querySelectorAll('.gates .passage span')].map(s => s.style.backgroundColor)")
    before = colours()
    assert len(set(before)) > 5  # a graded colouring, not one flat colour
    unit = Select(viewer.find_element("css selector", "select.unit"))
    first = unit.first_selected_option.get_attribute("value")
    unit.select_by_index(3)
    assert unit.first_selected_option.get_attribute("value") != first
    after = colours()
    assert after != before and len(after) == len(before)
    Select(viewer.find_element("css selector", "select.signal")).select_by_value("f")
    assert colours() != after
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", spans[20])
    ActionChains(browser).move_to_element(spans[20]).perform()
    hover = viewer.find_element("css selector", ".hover").text
    assert all(f"{g}=" in hover for g in "ifoc") and "step 20" in hover

    widths = [bar.size["width"] for bar in browser.find_elements("css selector", "#lm-next .bar")]
    assert widths and max(widths) > 10

    shot = tmp_path / "report.png"
    browser.set_window_size(1280, 1000)
    browser.execute_script("window.scrollTo(0, 0)")
    assert browser.save_screenshot(str(shot))
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", data[16:24])[0] > 500
    if os.environ.get("RNNLAB_SCREENSHOT"):
        shutil.copy(shot, os.environ["RNNLAB_SCREENSHOT"])


def test_forecast_report_renders_in_chromium(demo, browser):
    _, _, _, page = demo
    assert open_page(browser, page) == []
    assert check_charts(browser) >= 1
    band = browser.find_elements("css selector", "#forecast polygon.band")
    assert band and band[0].size["width"] > 10
