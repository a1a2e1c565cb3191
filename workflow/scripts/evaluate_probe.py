from rnce.evaluate.run import probe_feature_set
from rnce.logs import to_file

to_file(snakemake.log[0])
p, i = snakemake.params, snakemake.input
probe_feature_set(i.labels, i.tasks, i.features, snakemake.wildcards.feature_set, p.n_boot, p.n_holdout, p.seed,
                  p.l2, snakemake.output[0], p.l2_grid, p.inner_folds)
