"""The calls `tld annotate` makes to Label Studio, through the official `label-studio-sdk`.

Every failure (server down, timeout, refused request) becomes an `AnnotationServerError` that
names the server and the call and never the API token; the SDK's own errors carry response
headers and bodies that are not for end users.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from timelapse_d.annotation.server import (
    AnnotationServerError,
    ServerInfo,
    default_home,
    read_token,
    running,
)

TOKEN_ENV = "LABEL_STUDIO_API_KEY"
URL_ENV = "LABEL_STUDIO_URL"
FILES_ROOT_ENV = "LABEL_STUDIO_FILES_ROOT"
LOCAL_FILES_URL = "/data/local-files/?d="


@dataclass(frozen=True)
class Connection:
    """Where the server is, the token to use and the folder it serves local files from."""

    url: str
    token: str = field(repr=False)
    files_root: Path


def resolve_connection(
    url: str | None = None,
    token_file: Path | None = None,
    files_root: Path | None = None,
    data_dir: Path | None = None,
) -> Connection:
    """The connection from options, else $LABEL_STUDIO_URL / $LABEL_STUDIO_API_KEY /
    $LABEL_STUDIO_FILES_ROOT, else the server `tld annotate server start` runs from
    `data_dir` (default: the data folder under `default_home()`)."""
    server: ServerInfo | None = running(data_dir or default_home() / "data")
    url = url or os.environ.get(URL_ENV) or (server.url if server else None)
    if not url:
        raise AnnotationServerError(
            "no Label Studio server: start one with `tld annotate server start`, or give --url "
            f"(or ${URL_ENV}) and a token"
        )
    if token_file is not None:
        token = read_token(token_file)
    elif os.environ.get(TOKEN_ENV):
        token = os.environ[TOKEN_ENV].strip()
    elif server is not None and server.url == url:
        token = read_token(server.token_file)
    else:
        raise AnnotationServerError(
            f"no API token for {url}: set ${TOKEN_ENV} or give --token-file (Label Studio: "
            "Account & Settings > Access Token)"
        )
    root = files_root or os.environ.get(FILES_ROOT_ENV) or (server.files_root if server else None)
    if not root:
        raise AnnotationServerError(
            f"the folder {url} serves local files from is unknown: give --files-root (or "
            f"${FILES_ROOT_ENV}), the server's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"
        )
    return Connection(url.rstrip("/"), token, Path(root).resolve())


class Studio:
    """One Label Studio server, as the annotation commands use it."""

    def __init__(self, connection: Connection, timeout_s: float = 120.0) -> None:
        from label_studio_sdk import LabelStudio

        self.url = connection.url
        self.files_root = connection.files_root
        self._client = LabelStudio(
            base_url=connection.url, api_key=connection.token, timeout=timeout_s
        )

    @contextmanager
    def _call(self, what: str) -> Iterator[None]:
        import httpx
        from label_studio_sdk.core.api_error import ApiError

        try:
            yield
        except ApiError as exc:
            detail = exc.body.get("detail") if isinstance(exc.body, dict) else None
            errors = exc.body.get("validation_errors") if isinstance(exc.body, dict) else None
            text = "; ".join(str(x) for x in (detail, errors) if x) or "no detail"
            raise AnnotationServerError(
                f"Label Studio at {self.url} refused to {what} (HTTP {exc.status_code}): {text}"
            ) from None
        except httpx.HTTPError as exc:
            raise AnnotationServerError(
                f"Label Studio at {self.url} did not answer while trying to {what} "
                f"({type(exc).__name__}: {exc}); start it (`tld annotate server start`) and "
                "run the command again: it goes on where it stopped"
            ) from None

    def file_url(self, path: Path) -> str:
        """The URL Label Studio serves a local file under its files root at."""
        try:
            relative = path.resolve().relative_to(self.files_root)
        except ValueError:
            raise AnnotationServerError(
                f"{path} is not under the folder Label Studio serves ({self.files_root}): "
                "start the server with --files-root on a folder that holds the build"
            ) from None
        return f"{LOCAL_FILES_URL}{relative.as_posix()}"

    def ensure_project(
        self, title: str, label_config: str, instructions: str, overlap: int | None = None
    ) -> tuple[int, int]:
        """The id and overlap of the project named `title`, created or updated with this
        config and these instructions (HTML, shown before labelling). `overlap` (annotators
        per task) None keeps the project's (1 for a new project)."""
        settings: dict[str, Any] = {
            "label_config": label_config,
            "expert_instruction": instructions,
            "show_instruction": True,
        }
        with self._call("list projects"):
            listed: list[Any] = list(self._client.projects.list(title=title))
            found = [p for p in listed if p.title == title]
        if not found:
            with self._call(f"create project {title!r}"):
                project = self._client.projects.create(
                    title=title, maximum_annotations=overlap or 1, **settings
                )
            if project.id is None:
                raise AnnotationServerError(f"Label Studio created project {title!r} without an id")
            return project.id, overlap or 1
        project = found[0]
        if overlap is not None:
            settings["maximum_annotations"] = overlap
        changes = {
            key: value
            for key, value in settings.items()
            if _normalized(getattr(project, key)) != _normalized(value)
        }
        if changes:
            with self._call(f"update project {title!r}"):
                self._client.projects.update(id=project.id, **changes)
        return int(project.id), int(overlap or project.maximum_annotations)

    def ensure_local_storage(self, project: int, folder: Path) -> None:
        """Let `project` read files under `folder` through local-files serving."""
        path = str(folder.resolve())
        with self._call("list local storages"):
            storages = self._client.import_storage.local.list(project=project)
        if any(s.path == path for s in storages):
            return
        with self._call(f"add local storage {path}"):
            self._client.import_storage.local.create(
                project=project, path=path, title="timelapse-d previews", use_blob_urls=False
            )

    def tasks(self, project: int) -> list[dict[str, Any]]:
        """Every task of `project` as {'id', 'data', 'annotations', 'predictions'}
        (annotations as dicts, predictions as {'id', 'model_version', 'result'})."""
        with self._call("list tasks"):
            listed: list[Any] = list(
                self._client.tasks.list(project=project, fields="all", page_size=500)
            )
            return [
                {
                    "id": t.id,
                    "data": t.data,
                    "annotations": list(t.annotations or []),
                    "predictions": [
                        {"id": p.id, "model_version": p.model_version, "result": p.result}
                        for p in t.predictions or []
                    ],
                }
                for t in listed
            ]

    def import_tasks(self, project: int, tasks: Sequence[dict[str, Any]]) -> None:
        """Create tasks (with their predictions) in one request."""
        with self._call(f"import {len(tasks)} tasks"):
            # The SDK sends plain task dicts as they are; its stubs ask for request models.
            self._client.projects.import_tasks(id=project, request=list(tasks))  # type: ignore[arg-type]

    def update_task(self, task_id: int, data: dict[str, Any]) -> None:
        with self._call(f"update task {task_id}"):
            self._client.tasks.update(id=str(task_id), data=data)

    def replace_predictions(
        self, task_id: int, old: Sequence[int], prediction: dict[str, Any]
    ) -> None:
        """Delete the predictions `old` of a task and give it `prediction` instead."""
        with self._call(f"replace the prediction of task {task_id}"):
            for prediction_id in old:
                self._client.predictions.delete(id=prediction_id)
            self._client.predictions.create(task=task_id, **prediction)

    def annotators(self) -> dict[int, str]:
        """User id -> e-mail (the annotator's name in our files)."""
        with self._call("list users"):
            return {int(u.id): u.email or u.username for u in self._client.users.list()}


def _normalized(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value
