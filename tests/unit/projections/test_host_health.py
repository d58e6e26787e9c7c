"""The projection host's probes and restarts: a projection whose store is unreachable is
restarted on its own with backoff; the host stays alive, not ready, and says why."""

from __future__ import annotations

import time

import pytest

from projections.host import ProjectionHost, restart_delay_s
from tests.ports import free_port
from visionlog.settings import Settings


def test_restart_delays_double_up_to_the_cap() -> None:
    delays = [restart_delay_s(n, first_s=1.0, max_s=10.0) for n in range(1, 7)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_a_projection_that_cannot_reach_its_store_is_restarted_and_the_host_lives() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    unreachable = settings.model_copy(
        update={
            "postgres": settings.postgres.model_copy(update={"port": free_port()}),
            "projections": settings.projections.model_copy(
                update={"restart_first_s": 0.2, "restart_max_s": 0.4}
            ),
        }
    )
    host = ProjectionHost(unreachable, ["postgres"])
    assert host.liveness_problem() is None
    assert host.readiness_problem() == "projections not started"

    host.start()
    try:
        deadline = time.monotonic() + 60
        while host.states["postgres"].restarts < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        state = host.states["postgres"]
        assert state.restarts >= 2, "the projection was not restarted"
        assert type(state.last_error).__name__ == "OperationalError"
        # Waiting out its store is not death: the host and its other projections go on.
        assert not host.stop_event.is_set()
        assert host.liveness_problem() is None
        problem = host.readiness_problem()
        assert problem is not None
        assert problem.startswith("projection postgres ")
        assert "restarts in" in problem or "starting" in problem
    finally:
        host.stop()
    assert host.failures == {}
    host.raise_failures()


def test_unknown_projection_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown projections"):
        ProjectionHost(Settings(_env_file=None), ["elastic"])  # type: ignore[call-arg]
