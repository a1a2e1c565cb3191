from rnce.brain_age import split_job
from rnce.logs import to_file

to_file(snakemake.log[0])
p, i = snakemake.params, snakemake.input
split_job(p.cohorts, p.results, list(i.get("registration", [])), i.get("exclusions"), p.buckets, p.per_bucket,
          p.short_buckets, p.seed, snakemake.output.split, snakemake.output.buckets)
