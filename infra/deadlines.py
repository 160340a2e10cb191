"""Every wait of a deployment, derived from one stack setting so that none can cut another short.

``migrationTimeout`` is the longest migration run the team accepts. From it:

- the migrator's ``statement_timeout`` (no statement may outlast the whole run) and its
  advisory-lock wait (another migrator, or goose, may hold the lock for a whole run);
- the canary's ``healthy_deadline``: lock wait + run + lock-retry slack + the time to pull
  images and start the API + ``min_healthy_time``, so a long but legitimate migration is
  never declared unhealthy and reverted mid-way;
- ``progress_deadline``, which Nomad requires to exceed ``healthy_deadline``;
- ``pulumi up``'s create/update timeout for the job, which must outlast the whole deployment:
  every batch of the update may take up to ``progress_deadline``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from migrator.durations import milliseconds
from migrator.safety import Safety

# Per-statement lock_timeout and its retries stay the migrator's own (short) defaults; they are
# passed explicitly so the job says what it runs with.
_MIGRATOR = Safety()
DB_LOCK_TIMEOUT = f"{milliseconds(_MIGRATOR.lock_timeout)}ms"
LOCK_RETRIES = _MIGRATOR.lock_retries
# The longest a file can spend blocked: every attempt, and every pause at its longest.
LOCK_RETRY_SLACK_SECONDS = math.ceil(_MIGRATOR.lock_retry_seconds)
# Pulling the API and migrator images on a cold node, then starting the API.
STARTUP_SECONDS = 10 * 60
MIN_HEALTHY_SECONDS = 10
# Beyond healthy_deadline: room for Nomad to reschedule a lost canary before it gives up.
PROGRESS_MARGIN_SECONDS = 10 * 60
# Beyond the deployment: Nomad's evaluation and the provider's polling.
PULUMI_MARGIN_SECONDS = 5 * 60
MAX_PARALLEL = 1


def duration(seconds: int) -> str:
    """A duration Nomad, Pulumi and the migrator all parse: whole seconds."""
    return f"{seconds}s"


@dataclass(frozen=True)
class Deadlines:
    migration_seconds: int
    api_count: int
    canary: int

    @property
    def statement_timeout(self) -> int:
        return self.migration_seconds

    @property
    def lock_wait(self) -> int:
        return self.migration_seconds

    @property
    def migrator_worst_case(self) -> int:
        """The longest the prestart task can run before it succeeds or fails."""
        return self.lock_wait + self.migration_seconds + LOCK_RETRY_SLACK_SECONDS

    @property
    def min_healthy_time(self) -> int:
        return MIN_HEALTHY_SECONDS

    @property
    def healthy_deadline(self) -> int:
        return self.migrator_worst_case + STARTUP_SECONDS + MIN_HEALTHY_SECONDS

    @property
    def progress_deadline(self) -> int:
        return self.healthy_deadline + PROGRESS_MARGIN_SECONDS

    @property
    def batches(self) -> int:
        """Allocations the update waits for one after another: the canaries together, then
        the rest ``MAX_PARALLEL`` at a time (all of them, without canary)."""
        if self.canary:
            return 1 + math.ceil((self.api_count - self.canary) / MAX_PARALLEL)
        return math.ceil(self.api_count / MAX_PARALLEL)

    @property
    def pulumi_timeout(self) -> int:
        return self.batches * self.progress_deadline + PULUMI_MARGIN_SECONDS
