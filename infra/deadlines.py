"""Every wait of a deployment, derived from one stack setting so that none can cut another short.

``migrationTimeout`` is the longest migration run the team accepts. From it:

- the migrator's whole-run budget (``--run-timeout``: no statement runs past it, lock-retry
  backoff included), each statement's ``statement_timeout`` (no statement may outlast the
  run) and its advisory-lock wait (another migrator, or goose, may hold the lock for a whole
  run);
- the canary's ``healthy_deadline``: lock wait + run + the process's own start and end +
  the time to pull images and start the API + ``min_healthy_time``, so a long but legitimate
  migration is never declared unhealthy and reverted mid-way;
- ``progress_deadline``, which Nomad requires to exceed ``healthy_deadline``;
- the group's ``reschedule`` interval: a failed migrator is run again ``RESCHEDULE_ATTEMPTS``
  times, every attempt counting within the interval, and then Nomad fails the deployment at
  once and reverts it (deploymentwatcher ``shouldFailEarly``: out of reschedule attempts);
- ``pulumi up``'s create/update timeout for the job, which must outlast the whole deployment:
  every batch of the update may take up to ``progress_deadline``;
- the migrator's verdict: how long its first run may take to appear, and how long a retry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from migrator import Safety, milliseconds

# Per-statement lock_timeout and its retries stay the migrator's own (short) defaults; they are
# passed explicitly so the job says what it runs with. The run's budget bounds their backoff.
_MIGRATOR = Safety()
DB_LOCK_TIMEOUT = f"{milliseconds(_MIGRATOR.lock_timeout)}ms"
LOCK_RETRIES = _MIGRATOR.lock_retries
# Beyond the run's budget: the process's start and its connection (libpq's connect_timeout is
# 10 s), the statement cancelled at the budget's end rolling back, and recording the run.
RUN_SLACK_SECONDS = 60
# Pulling the API and migrator images on a cold node, then starting the API.
STARTUP_SECONDS = 10 * 60
MIN_HEALTHY_SECONDS = 10
# Beyond healthy_deadline: room for Nomad to reschedule a lost canary before it gives up.
PROGRESS_MARGIN_SECONDS = 10 * 60
# Beyond the deployment: Nomad's evaluation and the provider's polling.
PULUMI_MARGIN_SECONDS = 5 * 60
MAX_PARALLEL = 1
# A failed allocation (the migrator failed: it is never restarted in place) is replaced this
# many times, after this delay each; the migrator runs at most MIGRATOR_ATTEMPTS times a deployment.
RESCHEDULE_ATTEMPTS = 2
RESCHEDULE_DELAY_SECONDS = 30
MIGRATOR_ATTEMPTS = RESCHEDULE_ATTEMPTS + 1


def duration(seconds: int) -> str:
    """A duration Nomad, Pulumi and the migrator all parse: whole seconds."""
    return f"{seconds}s"


@dataclass(frozen=True)
class Deadlines:
    migration_seconds: int
    api_count: int
    canary: int

    @property
    def run_timeout(self) -> int:
        return self.migration_seconds

    @property
    def statement_timeout(self) -> int:
        return self.migration_seconds

    @property
    def lock_wait(self) -> int:
        return self.migration_seconds

    @property
    def migrator_worst_case(self) -> int:
        """The longest the prestart task can run before it succeeds or fails."""
        return self.lock_wait + self.run_timeout + RUN_SLACK_SECONDS

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
    def reschedule_interval(self) -> int:
        """Long enough to hold every attempt of one allocation: each fails at the latest at
        healthy_deadline, and is replaced after the delay."""
        return MIGRATOR_ATTEMPTS * (self.healthy_deadline + RESCHEDULE_DELAY_SECONDS)

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

    @property
    def first_run(self) -> int:
        """How long after the job was submitted its first migrator run may take to be
        recorded: placement and image pulls, then the advisory lock (a run records itself
        once it holds it)."""
        return STARTUP_SECONDS + self.lock_wait + PULUMI_MARGIN_SECONDS

    @property
    def retry(self) -> int:
        """How long after a failed run Nomad's retry of it may take to be recorded: the
        reschedule delay, placement and pulls on another node."""
        return RESCHEDULE_DELAY_SECONDS + STARTUP_SECONDS
