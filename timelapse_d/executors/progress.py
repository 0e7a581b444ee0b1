"""Progress of an executor's tasks: a bar on a terminal, a log line every ~10 % otherwise."""

from __future__ import annotations

import logging
import sys
import time

from tqdm import tqdm

LOG = logging.getLogger("timelapse_d")


class Progress:
    """A progress bar on a terminal, a plain log line every ~10% otherwise."""

    def __init__(self, desc: str, total: int) -> None:
        self.desc, self.total, self.done = desc, total, 0
        self.started = time.monotonic()
        self.bar = tqdm(total=total, desc=desc, unit="task") if sys.stderr.isatty() else None
        self.next_log = 0.0

    def step(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        elif self.done / max(self.total, 1) >= self.next_log or self.done == self.total:
            LOG.info("%s: %d/%d tasks", self.desc, self.done, self.total)
            self.next_log = self.done / max(self.total, 1) + 0.1

    def close(self) -> None:
        """End the bar; log how many tasks ran in how long."""
        if self.bar is not None:
            self.bar.close()
        LOG.info("%s: %d tasks in %.1f s", self.desc, self.done, time.monotonic() - self.started)
