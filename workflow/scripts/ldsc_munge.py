from rnce.genetics.ldsc import munge_job
from rnce.logs import to_file

to_file(snakemake.log[0])
p = snakemake.params
munge_job(p.executables, p.workflow_dir, snakemake.input.sumstats, p.snplist, snakemake.output[0])
