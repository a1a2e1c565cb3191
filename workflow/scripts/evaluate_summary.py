from rnce.evaluate.run import write_summary
from rnce.logs import to_file

to_file(snakemake.log[0])
p, o = snakemake.params, snakemake.output
write_summary(snakemake.input.tasks, list(snakemake.input.bootstrap), p.feature_sets, p.n_perm, p.seed, o.scores,
              o.pvalues, o.figure, p.epochs)
