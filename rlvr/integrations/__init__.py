"""rlvr's verifiers inside other trainers: a TRL reward function (`rlvr.integrations.trl`) and verl's
custom reward function (`rlvr.integrations.verl`), both scoring through rlvr's runner. Nothing else in
rlvr imports this package, and it imports no trainer: TRL and verl call it, not the other way round."""
