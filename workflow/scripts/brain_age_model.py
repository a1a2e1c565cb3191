from rnce.brain_age import write_bag
from rnce.logs import to_file

to_file(snakemake.log[0])
p, i, o = snakemake.params, snakemake.input, snakemake.output
write_bag(i.split, i.features, snakemake.wildcards.feature_set, p.l2, p.folds, p.seed, o.bag, o.metrics)
