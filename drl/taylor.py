"""Second-order Taylor arithmetic, moved to :mod:`models.taylor` with the batched follower
equilibrium; this module keeps ``drl.taylor`` imports working."""
from models.taylor import Jet, variables

__all__ = ["Jet", "variables"]
