"""The web page in a real browser: Debian's chromium driven by playwright against a live uvicorn server.

Run only these with ``pytest -m browser``; skipped when /usr/bin/chromium is absent, except under CI
(``CI=true``), where a missing browser fails them (``.ci/run`` installs it). The screenshot of
the verdict page is saved as ``page.png`` in the test's tmp_path (``--basetemp`` to keep it somewhere).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest

if TYPE_CHECKING:
    from conftest import LiveServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists() and not IN_CI, reason="Debian's chromium is not installed at /usr/bin/chromium"
    ),
]

# Canvas statistics computed in the page: drawn pixels, distinct colours, pixels of the timeline's line,
# drawn pixels left of x = 40 (axis labels).
CANVAS_STATS = """(canvas) => {
  const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
  const colours = new Set();
  let painted = 0, line = 0, margin = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] === 0) continue;
    painted++;
    if ((i / 4) % canvas.width < 40) margin++;  // left of the plot: the axis labels
    colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
    const near = (k, v) => Math.abs(data[i + k] - v) < 12;
    if (near(0, 31) && near(1, 95) && near(2, 191)) line++;
  }
  return { painted, colours: colours.size, line, margin, drawn: canvas.dataset.drawn || null };
}"""


@pytest.fixture(scope="module")
def face_video(detect_media: dict[str, Path]) -> Path:
    """2 s (24 frames at 12 fps) of the astronaut's face in H.264 (shared with the detect tests)."""
    return detect_media["two_seconds"]


@pytest.fixture
def browser_page(live_server: LiveServer) -> Any:
    if not CHROMIUM.exists():  # only reached under CI: there the browser tests must not skip
        pytest.fail(f"CI=true but {CHROMIUM} is missing: the browser tests cannot run")
    if IN_CI:
        from playwright import sync_api
    else:
        sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 1000})
            outside: list[str] = []
            page.on(
                "request",
                lambda request: (
                    None
                    if request.url.startswith((live_server.url, "data:"))
                    else outside.append(request.url)
                ),
            )
            page.goto(f"{live_server.url}/")
            yield page
            assert outside == [], f"the page fetched from outside the server: {outside}"
        finally:
            browser.close()


def test_page_uploads_a_video_and_shows_verdict_timeline_and_heatmap(
    browser_page: Any, live_server: LiveServer, face_video: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    expect(page.locator("#limits")).to_contain_text("Up to 8 MB")  # /v1/health was read
    page.set_input_files("#file", str(face_video))
    page.click("#submit")
    expect(page.locator("#result")).to_be_visible(timeout=120_000)
    expect(page.locator("#status")).to_contain_text("Done in")
    assert page.locator("#progress").evaluate("p => p.value") == 100

    label = page.locator("#verdict-label").inner_text()
    assert label in ("Likely FAKE", "Likely REAL")
    shown = re.fullmatch(
        r"fake probability (\d\.\d{3}) \(threshold 0\.50\)", page.locator("#verdict-prob").inner_text()
    )
    assert shown is not None
    with httpx.Client(base_url=live_server.url, timeout=120) as http:  # the API's answer for the same file
        files = {"file": (face_video.name, face_video.read_bytes(), "video/mp4")}
        video = http.post("/v1/detect", files=files).json()["videos"][0]
    assert shown.group(1) == f"{video['fake_probability']:.3f}"
    assert label == ("Likely FAKE" if video["label"] == "fake" else "Likely REAL")

    assert page.locator(".face").count() == len(video["faces"]) >= 1
    timeline = page.locator(".face canvas.timeline").first.evaluate(CANVAS_STATS)
    assert int(timeline["drawn"]) == len(video["faces"][0]["timeline"])
    assert timeline["line"] > 30 and timeline["colours"] > 5, timeline  # axes, bars and the blue line
    assert timeline["margin"] > 100, timeline  # the probability labels were drawn
    canvas = page.locator(".face canvas.heatmap").first
    heatmap = canvas.evaluate(CANVAS_STATS)
    similarity = np.asarray(video["faces"][0]["similarity"])
    assert int(heatmap["drawn"]) == len(similarity)
    assert heatmap["painted"] == 240 * 240 and heatmap["colours"] >= 3, heatmap
    # The largest cosine is drawn in the scale's top colour (yellow), the smallest in its bottom (purple).
    for (row, col), rgb in [
        (np.unravel_index(similarity.argmax(), similarity.shape), (253, 231, 37)),
        (np.unravel_index(similarity.argmin(), similarity.shape), (68, 1, 84)),
    ]:
        cell = 240 / len(similarity)
        x, y = int((col + 0.5) * cell), int((row + 0.5) * cell)
        pixel = canvas.evaluate(f"c => Array.from(c.getContext('2d').getImageData({x}, {y}, 1, 1).data)")
        assert np.abs(np.asarray(pixel[:3]) - rgb).max() <= 2, (row, col, pixel)
    assert page.locator(".face img.thumb").first.evaluate("img => img.complete && img.naturalWidth > 0")

    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)


def test_page_shows_the_reason_for_an_unusable_file(browser_page: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    garbage = tmp_path / "notes.mp4"
    garbage.write_bytes(b"this is not a video\n" * 100)
    page = browser_page
    expect(page.locator("#limits")).to_contain_text("Up to 8 MB")
    page.set_input_files("#file", str(garbage))
    page.click("#submit")
    expect(page.locator("#status")).to_contain_text("Error 422", timeout=60_000)
    expect(page.locator("#status")).to_contain_text("notes.mp4")
    assert page.locator("#status").get_attribute("role") == "status"  # announced by screen readers
    assert page.locator("#result").is_hidden()


def test_page_shows_the_models_warnings(browser_page: Any, live_server: LiveServer) -> None:
    """The tiny test model claims nothing; a model whose card warns (e.g. synthetic data only) shows it."""
    from playwright.sync_api import expect

    page = browser_page
    expect(page.locator("#limits")).to_contain_text("Up to")
    assert page.locator("#model-warnings").is_hidden()
    model = httpx.get(f"{live_server.url}/v1/model").json()
    warned = {**model, "warnings": ["this model was trained on synthetic data only"]}
    page.route("**/v1/model", lambda route: route.fulfill(json=warned))
    page.reload()
    expect(page.locator("#model-warnings")).to_contain_text("synthetic data only")
    expect(page.locator("#model-warnings")).to_be_visible()
