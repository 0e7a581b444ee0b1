"""A curator's round trip through a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver`, driven by Selenium) against a real Label Studio started here.

Pushes the demo build's camera-motion rejects (`--select reason=camera_motion`), logs in as
the admin, opens the labelling stream in a 1366x900 window and checks what an annotator
meets: the guidelines shown before labelling, a preview that plays muted in a loop, and the
categories, reasons, score hints and pre-annotation all in view without scrolling. Answers
with hotkeys, then `tld annotate pull` finds the answer in the manifest. Screenshots go to
the test's temporary folder (instructions.png, task.png, answered.png).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from timelapse_d.annotation.server import (
    ADMIN_EMAIL,
    ServerInfo,
    default_home,
    read_token,
    start,
    stop,
)
from timelapse_d.annotation.taxonomy import load_taxonomy
from timelapse_d.cli import cli
from timelapse_d.manifest import read_rows

pytestmark = pytest.mark.slow
webdriver = pytest.importorskip("selenium.webdriver")
label_studio_sdk = pytest.importorskip("label_studio_sdk")

VENV = Path(os.environ.get("TLD_LABEL_STUDIO_VENV") or default_home() / "venv")
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
WINDOW = (1366, 900)
# Root in a container, and no network: no sandbox, nothing fetched in the background.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
)  # fmt: skip
WAIT_S = 60  # an upper bound for pages and media to load on a busy machine, not a target

# Every choice label with its hotkey, position and state, as the page shows them.
CHOICES_JS = """
const shown = {};
for (const label of document.querySelectorAll('label')) {
  const match = label.innerText.trim().match(/^(.*?)\\s*\\[(.+)\\]$/s);
  const input = label.querySelector('input');
  if (!match || !input) continue;
  const r = label.getBoundingClientRect();
  shown[match[1].trim()] = {key: match[2], checked: input.checked,
    top: r.top, bottom: r.bottom, left: r.left, right: r.right, width: r.width};
}
return shown;
"""
RECT_JS = (
    "const r = arguments[0].getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom];"
)


def _needs(condition: bool, reason: str) -> None:
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (.ci/run installs it)")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, synthetic_build: Path) -> Path:
    """The folder the server serves, holding a copy of the demo build."""
    _needs(CHROMIUM.exists() and CHROMEDRIVER.exists(), "chromium and chromium-driver needed")
    _needs((VENV / "bin" / "label-studio").exists(), f"Label Studio is not installed in {VENV}")
    root = tmp_path_factory.mktemp("served-browser")
    shutil.copytree(synthetic_build, root / "build")
    return root


@pytest.fixture(scope="module")
def server(served: Path) -> Iterator[ServerInfo]:
    info = start(served / "server", VENV, served, port=0)
    yield info
    stop(served / "server")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(WAIT_S)
    yield driver
    driver.quit()


def _wait(driver: Any, condition: Any, what: str) -> Any:
    """Poll `condition` until it holds; elements the page re-renders meanwhile are looked up
    again."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    waiting = WebDriverWait(
        driver, WAIT_S, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,)
    )
    return waiting.until(condition, what)


def _log_in(driver: Any, info: ServerInfo) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{info.url}/user/login/")
    driver.find_element(By.NAME, "email").send_keys(ADMIN_EMAIL)
    driver.find_element(By.NAME, "password").send_keys(read_token(info.password_file))
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(driver, lambda d: "/user/login" not in d.current_url, "the login")


def _in_window(rect: list[float]) -> bool:
    left, top, right, bottom = rect
    return left >= 0 and top >= 0 and right <= WINDOW[0] and bottom <= WINDOW[1]


def test_a_curator_labels_a_clip_in_the_browser_and_pull_records_it(
    server: ServerInfo, served: Path, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    out = served / "build"
    connection = ["--url", server.url, "--token-file", str(server.token_file)]
    connection += ["--files-root", server.files_root]
    runner = CliRunner()
    push_args = ["annotate", "push", str(out), "--project", "browser check"]
    pushed = runner.invoke(cli, [*push_args, "--select", "reason=camera_motion", *connection])
    assert pushed.exit_code == 0, pushed.output
    moving = {r["clip_id"]: r for r in read_rows(out / "manifest.parquet")}
    moving = {c: r for c, r in moving.items() if "camera_motion" in r["reject_reasons"]}
    assert moving and f"{len(moving)} tasks created" in pushed.output

    admin = label_studio_sdk.LabelStudio(base_url=server.url, api_key=read_token(server.token_file))
    project = next(p for p in admin.projects.list() if p.title == "browser check")
    _log_in(browser, server)
    browser.get(f"{server.url}/projects/{project.id}/data?labeling=1")

    # The guidelines come first, and stay one click away (Instructions, top right).
    heading = (By.XPATH, "//h1[normalize-space()='Annotator guidelines']")
    shown = lambda d: [e for e in d.find_elements(*heading) if e.is_displayed()]  # noqa: E731
    _wait(browser, shown, "the guidelines before the first task")
    assert "Camera motion or scene motion?" in browser.find_element(By.TAG_NAME, "body").text
    browser.save_screenshot(str(tmp_path / "instructions.png"))
    ActionChains(browser).send_keys(Keys.ESCAPE).perform()
    _wait(browser, lambda d: not shown(d), "the guidelines to close")
    instructions = browser.find_element(By.XPATH, "//button[normalize-space()='Instructions']")
    assert instructions.is_displayed() and _in_window(browser.execute_script(RECT_JS, instructions))

    # The preview plays by itself, muted, and starts again at its end.
    video = _wait(browser, lambda d: d.find_elements(By.TAG_NAME, "video"), "the player")[0]
    browser.execute_script(
        "const v = arguments[0]; window.loops = 0; let last = v.currentTime;"
        "v.addEventListener('timeupdate', () => {"
        "  if (v.currentTime < last) window.loops += 1; last = v.currentTime; });",
        video,
    )
    _wait(browser, lambda d: video.get_property("readyState") >= 3, "the preview to load")
    clip_id = Path(video.get_property("currentSrc")).stem
    clip = moving[clip_id]
    duration = clip["num_frames"] / clip["fps"]
    assert video.get_property("duration") == pytest.approx(duration, abs=1.5 / clip["fps"])
    assert video.get_property("muted") and video.get_property("loop")
    assert not video.get_property("paused")
    start_time = video.get_property("currentTime")
    _wait(browser, lambda d: video.get_property("currentTime") != start_time, "playback")
    _wait(browser, lambda d: d.execute_script("return window.loops") >= 1, "the loop")

    # In a laptop window, with no scrolling: the player scaled to its column, the score
    # hints, the pre-annotation (reject: camera motion), every reason and category.
    assert browser.execute_script("return window.scrollY") == 0
    player = browser.execute_script(RECT_JS, video)
    column = browser.execute_script(RECT_JS, video.find_element(By.XPATH, ".."))
    assert _in_window(player) and player[2] - player[0] == pytest.approx(
        column[2] - column[0], abs=2
    )
    assert player[2] - player[0] > 1.05 * video.get_property("videoWidth")  # scaled up
    hints = browser.find_element(By.XPATH, "//*[starts-with(normalize-space(), 'Scores to look')]")
    assert "camera" in hints.text and _in_window(browser.execute_script(RECT_JS, hints))
    taxonomy = load_taxonomy()
    choices = browser.execute_script(CHOICES_JS)
    expected = [*taxonomy.decisions, *taxonomy.reasons, *taxonomy.categories]
    assert sorted(choices) == sorted(label.label for label in expected)
    assert len(taxonomy.categories) == 13
    for name, shown in choices.items():
        assert _in_window([shown["left"], shown["top"], shown["right"], shown["bottom"]]), name
        assert shown["width"] > 0, name
    assert choices["Reject"]["checked"] and choices["Camera motion"]["checked"]
    assert not choices["Keep"]["checked"]
    browser.save_screenshot(str(tmp_path / "task.png"))

    # Answer with the keyboard: keep, cloud and water, submit.
    keys = ActionChains(browser)
    for name in ("Keep", "Cloud", "Water"):
        keys.send_keys(choices[name]["key"])
    keys.perform()
    _wait(
        browser,
        lambda d: all(
            d.execute_script(CHOICES_JS)[n]["checked"] for n in ("Keep", "Cloud", "Water")
        ),
        "the hotkeys to take",
    )
    assert browser.execute_script(CHOICES_JS)["Camera motion"]["width"] == 0  # reject only
    browser.save_screenshot(str(tmp_path / "answered.png"))
    ActionChains(browser).key_down(Keys.CONTROL).send_keys(Keys.ENTER).key_up(
        Keys.CONTROL
    ).perform()

    def submitted(_: Any) -> bool:
        tasks = admin.tasks.list(project=project.id, fields="all")
        return any(t.data["clip_id"] == clip_id and t.annotations for t in tasks)

    _wait(browser, submitted, "the answer to reach the server")

    pulled = runner.invoke(cli, ["annotate", "pull", str(out), *connection])
    assert pulled.exit_code == 0, pulled.output
    assert "1 answers exported" in pulled.output
    assert re.search(r"status changed for 1 clips, so the shards are out of date", pulled.output)
    row = next(r for r in read_rows(out / "manifest.parquet") if r["clip_id"] == clip_id)
    assert (row["human_decision"], row["categories"], row["n_annotations"]) == (
        "keep",
        ["cloud", "water"],
        1,
    )
    assert row["agreement"] is None  # one annotator: no agreement to speak of
    assert row["status"] == "kept"  # a human keep lifts camera_motion
    for name in ("instructions.png", "task.png", "answered.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name
