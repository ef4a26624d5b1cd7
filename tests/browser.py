"""Open a local HTML page in headless Chromium (Debian's ``chromium`` + ``chromium-driver``, via Selenium)
and report what a reader would see: whether it loaded, each image's natural size, the console errors,
and a screenshot. Used by tests/test_report.py and docs/make_screenshots.py.

The browser runs offline-minded: no GPU, no sandbox (containers), no QUIC, no first-run, background
networking, component updates or sync, and a fresh profile directory per call.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1200,900")  # fmt: skip


def find_browser() -> tuple[str, str] | None:
    """(chromium, chromedriver) paths, or None when either is missing (or Selenium is not installed)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return None
    browser = os.environ.get("SPIKEDYN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    driver = os.environ.get("SPIKEDYN_CHROMEDRIVER") or shutil.which("chromedriver")
    if not browser or not driver:
        return None
    return browser, driver


@dataclass
class PageCheck:
    title: str
    ready_state: str
    images: list[dict] = field(default_factory=list)  # {"alt", "width", "height", "complete"}
    console_errors: list[str] = field(default_factory=list)
    text: str = ""


def open_page(html_path: Path, screenshot: Path | None = None) -> PageCheck:
    """Load ``html_path`` (file://) in headless Chromium; optionally save a full-page PNG screenshot."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_browser()
    if found is None:
        raise RuntimeError("headless Chromium needs `chromium`, `chromedriver` (apt-get install chromium "
                           "chromium-driver) and selenium (pip install selenium)")
    browser, driver_path = found
    profile = tempfile.mkdtemp(prefix="spikedyn-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    try:
        driver.set_page_load_timeout(60)
        driver.get(Path(html_path).resolve().as_uri())
        images = driver.execute_script(
            "return Array.from(document.images).map(i => ({alt: i.alt, width: i.naturalWidth, "
            "height: i.naturalHeight, complete: i.complete}));")
        check = PageCheck(
            title=driver.title,
            ready_state=driver.execute_script("return document.readyState;"),
            images=images,
            console_errors=[e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"],
            text=driver.execute_script("return document.body.innerText;"),
        )
        if screenshot is not None:
            height = driver.execute_script("return document.body.scrollHeight;")
            driver.set_window_size(1200, min(int(height) + 40, 4000))
            Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(screenshot))
        return check
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
