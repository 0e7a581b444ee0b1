"""The Ray executor on a real local Ray cluster (`ray.init(num_cpus=2)`, started and stopped
here): builds and precompute write the same bytes as on the local executor, a killed Ray worker
fails only its task and the re-run completes, and shared state holds across workers."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import SHARED_MEDIA, needs_shared_media
from pinned_outputs import output_hashes
from small_build import SETTINGS, tld
from standins.host import VideoHost

from timelapse_d.config import resolve_config
from timelapse_d.errors import ConfigError, HostError
from timelapse_d.executors import Executor, LocalExecutor, Resources, Task, TaskFailure
from timelapse_d.executors.ray_cluster import RayExecutor
from timelapse_d.pipeline import build
from timelapse_d.precompute.stage import PrecomputeOptions, precompute
from timelapse_d.runs import RunDir
from timelapse_d.synth import write_corpus

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Any:
    """A local Ray cluster of 2 CPUs; this module's functions travel by value to its workers."""
    ray.init(num_cpus=2, include_dashboard=False, namespace="timelapse_d", log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.shutdown()


def _kill_own_process(*args: Any) -> Any:
    os.kill(os.getpid(), signal.SIGKILL)


class KillsFirstTaskOf(RayExecutor):
    """The Ray executor, except that the first task of stage `stage` kills the Ray worker
    running it (a native crash, an out-of-memory kill) before it finishes."""

    def __init__(self, stage: str) -> None:
        super().__init__()
        self.stage, self.killed = stage, []

    def map(self, tasks: Any, desc: str = "tasks") -> Any:
        if desc == self.stage and tasks and not self.killed:
            first = tasks[0]
            self.killed.append(first.name)
            tasks = [Task(first.name, _kill_own_process, (), first.resources), *tasks[1:]]
        return super().map(tasks, desc)


def test_the_demo_build_on_ray_writes_the_local_bytes(
    cluster: Any, synthetic_build: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    config = resolve_config(source="synthetic", overrides={"executor": "ray"})
    assert build(config, out).complete
    assert output_hashes(out) == output_hashes(synthetic_build)


@needs_shared_media
def test_a_local_footage_build_on_ray_through_the_cli_writes_the_local_bytes(
    cluster: Any, tmp_path: Path
) -> None:
    footage = SHARED_MEDIA / "timelapse"
    sets = [f"--set={k}={v}" for k, v in {**SETTINGS, "filter.min_height": "100"}.items()]
    common = ["build", "--source", "local", "--input", str(footage), *sets]
    local = tld(*common, "--out", str(tmp_path / "local"), "--workers", "2")
    address = cluster.get_runtime_context().gcs_address
    on_ray = tld(
        *common, "--out", str(tmp_path / "ray"), "--executor", "ray", "--ray-address", address
    )
    assert local.returncode == 0, local.stderr
    assert on_ray.returncode == 0, on_ray.stderr
    hashes = output_hashes(tmp_path / "ray")
    assert any(name.endswith(".tar") for name in hashes)
    assert hashes == output_hashes(tmp_path / "local")


@pytest.mark.parametrize("stage", ["analyze", "encode"])
def test_a_killed_ray_worker_fails_its_task_and_the_rerun_completes(
    cluster: Any, synthetic_build: Path, tmp_path: Path, stage: str
) -> None:
    out = tmp_path / "out"
    config = resolve_config(source="synthetic", overrides={"executor": "ray"})
    killer = KillsFirstTaskOf(stage)

    first = build(config, out, killer)

    assert killer.killed and not first.complete
    run = RunDir(out)
    assert run.failures() == {stage: killer.killed}
    assert "worker process died" in run.failure_path(stage, killer.killed[0]).read_text()
    assert not run.marker(stage, killer.killed[0]).exists()

    second = build(config, out, RayExecutor())

    assert second.complete
    assert RunDir(out).failures() == {}
    assert output_hashes(out) == output_hashes(synthetic_build)


def test_flow_precompute_on_ray_actors_writes_the_local_field_shards(
    cluster: Any, synthetic_build: Path, tmp_path: Path
) -> None:
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    for copy in (local, on_ray):
        shutil.copytree(synthetic_build, copy)
    options = PrecomputeOptions("flow", "dis")

    precompute(local, options, LocalExecutor(1))
    report = precompute(on_ray, options, RayExecutor())

    assert report.shards_done == len(list((on_ray / "shards").glob("clips-*.tar")))
    flows = sorted(p.name for p in (on_ray / "shards").glob("flow-*.tar"))
    assert flows and flows == sorted(p.name for p in (local / "shards").glob("flow-*.tar"))
    for name in flows:
        assert (on_ray / "shards" / name).read_bytes() == (local / "shards" / name).read_bytes()


def test_a_task_no_node_can_hold_is_refused_with_a_reason(cluster: Any, tmp_path: Path) -> None:
    task = Task("shard-0", _kill_own_process, (), Resources(cpus=1.0, gpus=1.0, long_lived=True))
    with pytest.raises(ConfigError, match="no node of the Ray cluster has 1 CPU and 1 GPU"):
        list(RayExecutor().map([task], "precompute_flow"))


def _limited_start(limiter: Any) -> float:
    limiter.acquire()
    return time.time()


def test_the_rate_limit_holds_across_ray_workers(cluster: Any, tmp_path: Path) -> None:
    executor: Executor = RayExecutor()
    calls, period = 3, 2.0
    limiter = executor.rate_limiter(tmp_path / "limit.json", calls, period)
    tasks = [Task(f"call{i}", _limited_start, (limiter,), Resources(cpus=0.5)) for i in range(8)]

    starts = sorted(result for _, result in executor.map(tasks, "limited"))

    # The bucket lives in one named actor: any window of `period` holds at most `calls` starts
    # although 4 tasks ran at once in 2 worker processes (a limiter per process would not).
    assert len(starts) == 8
    assert max(sum(1 for t in starts if s <= t < s + period) for s in starts) <= calls
    names = {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)}
    assert any(n.startswith("tld-ratelimit:") for n in names)


def test_the_build_folder_is_checked_from_every_node(cluster: Any, tmp_path: Path) -> None:
    RayExecutor().check_storage(tmp_path)
    assert list(tmp_path.iterdir()) == []  # the probe is gone


def test_an_unreachable_cluster_is_one_line_and_no_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = tld("build", "--source", "synthetic", "--out", str(out), "--executor", "ray",
                 "--ray-address", "127.0.0.1:1", timeout=120)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: no Ray cluster at '127.0.0.1:1' ([Errno 111] Connection refused); start one "
        "with `ray start --head` or pass --ray-address HOST:PORT"
    ]
    assert not out.exists()


def _span(seconds: float) -> tuple[float, float]:
    started = time.time()
    time.sleep(seconds)
    return started, time.time()


def test_a_stage_concurrency_caps_its_tasks_in_flight(cluster: Any) -> None:
    one_at_a_time = Resources(cpus=0.25, concurrency=1)
    tasks = [Task(f"get{i}", _span, (0.2,), one_at_a_time) for i in range(5)]

    spans = sorted(result for _, result in RayExecutor().map(tasks, "downloads"))

    # Eight would fit the cluster's 2 CPUs at a quarter each; the cap lets one run at a time.
    assert len(spans) == 5
    assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:], strict=False))


def _pid(item: int) -> int:
    return os.getpid()


def _dies_on(item: int) -> int:
    if item == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return os.getpid()


def test_long_lived_tasks_run_on_a_pool_of_one_actor_per_slot(cluster: Any) -> None:
    lasting = Resources(cpus=1.0, long_lived=True)
    tasks = [Task(f"shard{i}", _pid, (i,), lasting) for i in range(8)]

    pids = [result for _, result in RayExecutor().map(tasks, "precompute_flow")]

    # 2 CPUs, 1 per task: two actors ran the 8 shards, each keeping what it loaded (the
    # precompute model cache is per process), never one process per shard.
    assert len(pids) == 8
    assert 1 <= len(set(pids)) <= 2


def test_a_dead_actor_fails_its_task_and_is_replaced(cluster: Any) -> None:
    lasting = Resources(cpus=1.0, long_lived=True)
    tasks = [Task(f"shard{i}", _dies_on, (i,), lasting) for i in range(8)]

    results = dict((task.name, result) for task, result in RayExecutor().map(tasks, "precompute"))

    assert sorted(results) == sorted(t.name for t in tasks)
    assert isinstance(results["shard3"], TaskFailure)
    assert "worker process died" in results["shard3"].error
    assert all(isinstance(r, int) for name, r in results.items() if name != "shard3")


def _disk_full(item: int) -> int:
    if item == 1:
        raise OSError(28, "No space left on device")
    time.sleep(0.2)
    return item


def test_a_failure_of_the_machine_in_a_ray_task_stops_the_run(cluster: Any) -> None:
    tasks = [Task(f"clip{i}", _disk_full, (i,), Resources(cpus=0.5)) for i in range(6)]
    with pytest.raises(HostError, match="clip1: .*No space left on device"):
        list(RayExecutor().map(tasks, "encode"))


@pytest.fixture(scope="module")
def url_list(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Four synthetic time-lapses served on 127.0.0.1, and the URL list naming them."""
    folder = tmp_path_factory.mktemp("served")
    with VideoHost() as host:
        for number, path in enumerate(write_corpus(folder, 0, width=256, height=144, num_videos=4)):
            host.files[f"/v/{number}.mp4"] = path.read_bytes()
        listing = folder / "urls.txt"
        listing.write_text("".join(host.url(p) + "\n" for p in sorted(host.files)))
        yield host, listing


def test_a_streamed_url_list_build_on_ray_writes_the_local_bytes(
    cluster: Any, url_list: Any, tmp_path: Path
) -> None:
    _, listing = url_list
    settings = {
        **SETTINGS,
        "input": str(listing),
        "download.workers": 4,
        "download.videos_in_flight": 2,
        "download.calls_per_period": 2,
        "download.period_s": 1.0,
    }
    on_ray = RayExecutor()
    for name, executor in (("local", LocalExecutor(2)), ("ray", on_ray)):
        config = resolve_config(source="urls", overrides=settings)
        assert build(config, tmp_path / name, executor).complete

    # Downloads, analyses and encodes ran on Ray wave by wave, their starts taken from the
    # build's rate-limit actor; nothing of the sources is left, the bytes are the local ones.
    actors = {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)}
    state = (tmp_path / "ray" / "run" / "acquire" / "download-ratelimit.json").resolve()
    assert f"tld-ratelimit:{state}:2/1" in actors
    assert list((tmp_path / "ray" / "sources" / "urls").glob("*.mp4")) == []
    assert output_hashes(tmp_path / "ray") == output_hashes(tmp_path / "local")
