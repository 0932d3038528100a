"""Published test instances for the toolkit's bilevel, EPEC and Nash solves (issue 15 item 7).

``INSTANCES`` lists them all (name -> :class:`Instance`): BASBLib's LP/QP bilevel programs,
MacMPEC's MPECs read as bilevel programs, the Mitsos-Barton nonconvex followers, and EPEC and
Nash games (:mod:`.games`). ``metatrading bench peers`` runs them
(:mod:`benchmarks.bench_peers`).
"""
from .basblib import INSTANCES as _BASBLIB
from .games import INSTANCES as _GAMES
from .instance import REL_TOL, Built, Expect, Instance, Kind, Need, SkipInstance
from .macmpec import INSTANCES as _MACMPEC
from .mitsos_barton import INSTANCES as _MB

__all__ = ["INSTANCES", "REL_TOL", "Built", "Expect", "Instance", "Kind", "Need", "SkipInstance"]

INSTANCES: dict[str, Instance] = {}
for _inst in (*_BASBLIB, *_MACMPEC, *_MB, *_GAMES):
    if _inst.name in INSTANCES:
        raise RuntimeError(f"two published instances named {_inst.name!r}")
    INSTANCES[_inst.name] = _inst
