from rnce.genetics.ldsc import summary_job
from rnce.logs import to_file

to_file(snakemake.log[0])
p, i, o = snakemake.params, snakemake.input, snakemake.output
summary_job(list(i.h2), list(i.enrichment), p.names, p.fdr, o.h2, o.figure)
