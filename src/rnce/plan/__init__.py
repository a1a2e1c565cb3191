"""The cost plan of a run (``{results}/plan.tsv``): jobs, core-hours, GPU-hours, memory, disk and wall time
per stage, predicted from the config and the cohort sizes before any job runs.

- :mod:`rnce.plan.sizes`: how many images, subjects, shards, samples and variants the run has (the tables
  where they exist, else the ``simulate`` section's expected sizes).
- :mod:`rnce.plan.work`: every job of ``all`` with its work in units (images, voxels, GFLOP, genotypes) and
  the bytes it writes.
- :mod:`rnce.plan.costs`: seconds and MB per unit, the package's measured table (``data/unit_costs.tsv``)
  or a refit on a previous run's benchmark files (``plan.calibrate_from``).
- :mod:`rnce.plan.report`: the per-job predictions, the per-stage table and its printout, and the walltime
  check that stops a run whose job cannot fit its profile's time limit.
"""
