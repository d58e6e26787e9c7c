"""The projection host's probes: a projection that cannot start makes the host dead."""

from __future__ import annotations

from projections.host import ProjectionHost
from tests.ports import free_port
from visionlog.settings import Settings


def test_a_projection_that_cannot_reach_its_store_fails_liveness_and_stops_the_host() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    unreachable = settings.model_copy(
        update={"postgres": settings.postgres.model_copy(update={"port": free_port()})}
    )
    host = ProjectionHost(unreachable, ["postgres"])
    assert host.liveness_problem() is None
    assert host.readiness_problem() == "projections not started"

    host.start()
    assert host.stop_event.wait(30), "the host did not stop after its projection failed"
    host.stop()

    problem = host.liveness_problem()
    assert problem is not None
    assert problem.startswith("projection postgres failed: OperationalError")
    assert host.readiness_problem() == problem
    assert list(host.failures) == ["postgres"]
