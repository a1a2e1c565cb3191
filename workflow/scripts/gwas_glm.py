from rnce.genetics.jobs import glm_job
from rnce.logs import to_file

to_file(snakemake.log[0])
p, i = snakemake.params, snakemake.input
glm_job(p.prefix, i.bag, p.cohort, p.results, i.features, i.pcs, snakemake.output[0], snakemake.threads,
        snakemake.resources.mem_mb)
