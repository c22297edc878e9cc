"""devhub's clock: wall time, which a test can move forward.

GitHub renders timestamps in whole seconds (``2024-05-01T12:00:00Z``), and so does devhub, so
two changes within one second carry the same ``updated_at`` and ``since`` cannot tell them
apart. A test that needs them apart advances devhub's clock (``DevHubThread.advance_clock``,
or ``POST /_devhub/clock {"advance": seconds}``) instead of sleeping. It only moves forward.
"""

from __future__ import annotations

import threading
import time


class Clock:
    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()  # tests advance it from another thread

    def time(self) -> float:
        """Seconds since the epoch, as devhub sees them."""
        return time.time() + self._offset

    def advance(self, seconds: float) -> float:
        """Move the clock ``seconds`` forward; the new time."""
        if not seconds >= 0:
            raise ValueError("devhub's clock only moves forward")
        with self._lock:
            self._offset += seconds
        return self.time()
