"""The batched follower equilibrium, moved to :mod:`models.batch_followers` (the certificate of
:mod:`epec`, a lower layer, uses it); this module keeps ``drl.followers`` imports working."""
from models.batch_followers import (BatchEquilibrium, Coefficients, SolverOptions, market_utilities,
                                    scenario_arrays, solve_followers)

__all__ = ["SolverOptions", "Coefficients", "BatchEquilibrium", "solve_followers", "market_utilities",
           "scenario_arrays"]
