from rnce.genetics.ldsc import h2_job
from rnce.logs import to_file

to_file(snakemake.log[0])
p = snakemake.params
h2_job(p.executables, p.workflow_dir, snakemake.input.munged, p.reference, p.weights,
       snakemake.wildcards.feature_set, snakemake.output[0], p.intercept)
