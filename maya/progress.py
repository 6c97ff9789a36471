"""Progress of a long step, for people and for logs: one small class both dedup and the gallery use.

On a terminal it is a tqdm bar; elsewhere (logs, CI, tests) a line ``maya: <desc>: <done>/<total>`` at
most every ``interval`` seconds (always the first and the last), so a long run can be followed.
It lives here, outside any pipeline, so that every layer that reports progress can import it.
"""

from __future__ import annotations

import sys
import time


class Progress:
    """A progress bar on a terminal; elsewhere a line per update at most every ``interval`` seconds
    (always the first and the last), so logs and tests can follow a long run."""

    def __init__(self, total: int, desc: str, enabled: bool = True, interval: float = 1.0, stream=None,
                 unit: str = "img"):
        self.total, self.desc, self.done = total, desc, 0
        self.stream = stream or sys.stderr
        self.enabled = enabled and total > 0
        self.interval = interval
        self._last = None
        self._bar = None
        if self.enabled and getattr(self.stream, "isatty", lambda: False)():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, mininterval=0.5, leave=False, file=self.stream)

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if self._last is None or now - self._last >= self.interval or self.done >= self.total:
            self._last = now
            # write(), not print(): a Prefect flow with log_prints turns print() into log records, which
            # a quiet console never shows
            self.stream.write(f"maya: {self.desc}: {self.done}/{self.total}\n")
            self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
