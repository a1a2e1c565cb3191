from rnce.evaluate.run import labels_job
from rnce.logs import to_file

to_file(snakemake.log[0])
p, i = snakemake.params, snakemake.input
labels_job(p.cohorts, p.results, list(i.get("registration", [])), i.get("exclusions"), p.tasks, p.conversion_years,
           p.n_holdout, p.min_class_size, snakemake.output.labels, snakemake.output.tasks)
