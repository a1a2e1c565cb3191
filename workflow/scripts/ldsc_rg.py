from rnce.genetics.ldsc import rg_job
from rnce.logs import to_file

to_file(snakemake.log[0])
p = snakemake.params
rg_job(p.executables, p.workflow_dir, list(snakemake.input.munged), p.names, p.reference, p.weights,
       snakemake.output[0], p.intercept)
