"""The simulated demo world with planted truth (see :mod:`rnce.simulate.world`)."""

from rnce.simulate.world import simulate_world

__all__ = ["simulate_world"]
