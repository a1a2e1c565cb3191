from rnce.genetics.ldsc import reference_job
from rnce.logs import to_file

to_file(snakemake.log[0])
p = snakemake.params
reference_job(p.executables, p.workflow_dir, p.prefix, snakemake.output[0], p.window_kb)
