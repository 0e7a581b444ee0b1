"""`tld report`: the page of the demo build opened in headless Chromium."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser import chromium, needs_chromium
from timelapse_d.manifest import CLIP_SCHEMA, read_rows, write_table
from timelapse_d.publish.report import SECTIONS, load_build, render

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report_page(fields_build: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "out"
    shutil.copytree(fields_build, out)
    result = subprocess.run(
        [sys.executable, "-m", "timelapse_d", "report", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    page = Path(result.stdout.strip())
    assert page == out / "report.html"
    return page


def test_report_is_self_contained(report_page: Path) -> None:
    text = report_page.read_text(encoding="utf-8")
    assert "http://" not in text.replace("http://www.w3.org", "")
    assert "https://" not in text
    assert 'src="data:image/svg+xml;base64,' in text
    assert 'src="data:image/jpeg;base64,' in text


@needs_chromium
def test_report_renders_in_chromium(report_page: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    with chromium(tmp_path / "profile") as driver:
        driver.get(report_page.as_uri())
        for key, title in SECTIONS:
            section = driver.find_element(By.ID, key)
            assert section.find_element(By.TAG_NAME, "h2").text == title
            assert section.text.strip() != title, f"section {key} is empty"
        images = driver.find_elements(By.TAG_NAME, "img")
        broken = [
            image.get_attribute("alt")
            for image in images
            if not driver.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth > 0", image
            )
        ]
        assert not broken
        plots = driver.find_elements(By.CSS_SELECTOR, "img.plot")
        thumbs = driver.find_elements(By.CSS_SELECTOR, "img.thumb")
        assert len(plots) >= 5 and len(thumbs) >= 3 * 12  # every gallery clip has 3 frames
        galleries = driver.find_elements(By.CSS_SELECTOR, "#galleries h3")
        assert {"kept", "static", "too_short", "camera_motion"} <= {g.text for g in galleries}
        rows = driver.find_elements(By.CSS_SELECTOR, "#clip-table tbody tr")
        assert len(rows) == 24  # the demo's candidate clips, one page
        assert driver.find_element(By.ID, "clip-page").text == "page 1 of 1 (24 clips)"
        driver.find_element(By.CSS_SELECTOR, "#clip-filter option[value=rejected]").click()
        rows = driver.find_elements(By.CSS_SELECTOR, "#clip-table tbody tr")
        assert [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows] == ["rejected"] * 12
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors
        screenshot = report_page.parent / "report.png"
        assert driver.save_screenshot(str(screenshot))
        assert screenshot.stat().st_size > 10_000


def test_human_decisions_are_compared_with_the_automatic_ones(
    synthetic_build: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(synthetic_build, out)
    rows = read_rows(out / "manifest.parquet")
    kept = [r for r in rows if r["status"] == "kept"]
    static = next(r for r in rows if r["reject_reasons"] == ["static"])
    labels = {r["clip_id"]: "keep" for r in kept[1:]} | {
        kept[0]["clip_id"]: "reject",
        static["clip_id"]: "keep",
    }
    for row in rows:
        row["human_decision"] = labels.get(row["clip_id"])
    write_table(out / "manifest.parquet", rows, CLIP_SCHEMA)
    human = render(load_build(out)).split('<section id="human"')[1].split("</section>")[0]
    assert f"{len(labels)} labelled clips; automatic and human agree on {len(kept) - 1}." in human
    matrix = "<tr><td>keep</td><td>{}</td><td>1</td></tr><tr><td>reject</td><td>1</td><td>0</td>"
    assert matrix.format(len(kept) - 1) in human
    assert f"<td>{static['clip_id']}</td><td>reject</td><td>keep</td>" in human
