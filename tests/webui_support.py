"""Playwright (Python) driving the Debian chromium at /usr/bin/chromium — no browser download — and
what the UI tests read from the page: tables as {row key: {column: text}}, charts as drawn."""
from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

TABLES_JS = """(sel) => {
  const out = {};
  for (const tr of document.querySelectorAll(sel + ' tr[data-key]')) {
    const row = {};
    for (const td of tr.querySelectorAll('td[data-col]')) row[td.dataset.col] = td.textContent;
    out[tr.dataset.key] = row;
  }
  return out;
}"""
TITLES_JS = """(sel) => {
  const out = {};
  for (const tr of document.querySelectorAll(sel + ' tr[data-key]')) {
    const row = {};
    for (const td of tr.querySelectorAll('td[data-col]')) row[td.dataset.col] = td.title;
    out[tr.dataset.key] = row;
  }
  return out;
}"""


@contextlib.asynccontextmanager
async def browser(width: int = 1280, height: int = 900, token: str | None = None):
    """A fresh headless Chromium page; `token` is put in sessionStorage as the token form does."""
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (Debian package 'chromium')")
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu",
                                                                    "--disable-dev-shm-usage"])
        try:
            page = await b.new_page(viewport={"width": width, "height": height})
            page.errors = []  # type: ignore[attr-defined]
            page.on("pageerror", lambda e: page.errors.append(str(e)))
            page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
            if token is not None:
                await page.add_init_script(f"sessionStorage.setItem('infersight.token', {token!r});")
            yield page
        finally:
            await b.close()


async def show(page, url: str, timeout_ms: int = 30000) -> None:
    """Open `url` (a full URL or, on the open page, '#/view?...') and wait until the view rendered."""
    if url.startswith("#"):
        await page.evaluate("document.body.dataset.ready = 'stale'")
        await page.evaluate(f"location.hash = {url!r}")
    else:
        await page.goto(url)
    await page.wait_for_function("() => document.body.dataset.ready === 'ready'", timeout=timeout_ms)


async def tables(page, selector: str = "#view") -> dict[str, dict[str, str]]:
    return await page.evaluate(TABLES_JS, selector)


async def titles(page, selector: str = "#view") -> dict[str, dict[str, str]]:
    return await page.evaluate(TITLES_JS, selector)


async def charts(page) -> dict[str, dict]:
    """window.infersightCharts: per chart id its title, x points and series [{label, points, threshold}]."""
    return await page.evaluate("window.infersightCharts")


def series(chart: dict, thresholds: bool = False) -> dict[str, int]:
    return {s["label"]: s["points"] for s in chart["series"] if s["threshold"] == thresholds}


async def text(page, selector: str) -> str:
    return (await page.inner_text(selector)).strip()
