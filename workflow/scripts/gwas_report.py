from rnce.genetics.gwas import write_report
from rnce.logs import to_file

to_file(snakemake.log[0])
p, o = snakemake.params, snakemake.output
write_report(p.prefix, snakemake.input.sumstats, snakemake.wildcards.feature_set, p.r2, p.kb, o.loci, o.summary,
             o.manhattan, o.qq)
