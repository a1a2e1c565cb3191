from rnce.evaluate.run import write_summary
from rnce.logs import to_file

to_file(snakemake.log[0])
o = snakemake.output
write_summary(snakemake.input.tasks, list(snakemake.input.bootstrap), snakemake.params.n_perm,
              snakemake.params.seed, o.scores, o.pvalues, o.figure)
