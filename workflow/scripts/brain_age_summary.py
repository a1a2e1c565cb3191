from rnce.brain_age import write_summary
from rnce.logs import to_file

to_file(snakemake.log[0])
i, o = snakemake.input, snakemake.output
write_summary(list(i.bags), list(i.metrics), snakemake.params.feature_sets, o.metrics, o.correlation, o.heatmap,
              o.scatter)
