from rnce.brain_age import write_summary
from rnce.logs import to_file

to_file(snakemake.log[0])
write_summary(list(snakemake.input.bags), list(snakemake.input.metrics), snakemake.params.feature_sets,
              dict(snakemake.output.items()))
