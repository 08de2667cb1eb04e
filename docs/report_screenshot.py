"""Make docs/report.png, the README's picture of the report, from a demo run's report.html.

    rnnlab demo --out runs/demo
    python docs/report_screenshot.py runs/demo/report.html docs/report.png

Opens the page in headless Chromium (Debian's chromium + chromium-driver, through selenium), takes
the sections that tell the story — accuracy against gap, gradient flow, the gate viewer — and stacks
them into one PNG (palette-quantised to stay well under 1 MiB).
"""
from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path

SECTIONS = ["overview", "lab-gap", "gradflow-gradflow", "lm-gates"]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1180,1200"]


def main(page: str, out: str) -> None:
    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in FLAGS + [f"--user-data-dir={tempfile.mkdtemp(prefix='rnnlab-chromium-')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(Path(page).resolve().as_uri())
        shots = []
        for section in SECTIONS:
            found = driver.find_elements("id", section)
            if found:
                driver.execute_script("arguments[0].scrollIntoView()", found[0])
                shots.append(Image.open(io.BytesIO(found[0].screenshot_as_png)).convert("RGB"))
    finally:
        driver.quit()
    pad = 16  # a white margin around and between the sections
    width = max(s.width for s in shots) + 2 * pad
    sheet = Image.new("RGB", (width, sum(s.height + pad for s in shots) + pad), "white")
    y = pad
    for shot in shots:
        sheet.paste(shot, (pad, y))
        y += shot.height + pad
    sheet.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    print(f"wrote {out} ({Path(out).stat().st_size / 1024:.0f} KiB, {sheet.width}x{sheet.height})")


if __name__ == "__main__":
    main(*sys.argv[1:3])
