from rnce.brain_age import write_split
from rnce.logs import to_file

to_file(snakemake.log[0])
p, i = snakemake.params, snakemake.input
write_split(p.records, list(i.get("registration", [])), i.get("exclusions"), p.buckets, p.per_bucket,
            p.short_buckets, p.seed, snakemake.output.split, snakemake.output.buckets)
