from rnce.genetics.jobs import qc_job
from rnce.logs import to_file

to_file(snakemake.log[0])
p, i, o = snakemake.params, snakemake.input, snakemake.output
qc_job(p.genotypes, i.split, p.cohort, p.results, i.features, p.thresholds, p.min_samples, p.n_pcs, p.approx_above,
       p.prefix, o.report, o.pcs, snakemake.threads, snakemake.resources.mem_mb)
