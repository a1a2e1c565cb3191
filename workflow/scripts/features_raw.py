from rnce.features.extract import combine
from rnce.logs import to_file

to_file(snakemake.log[0])
combine(list(snakemake.input.features), list(snakemake.input.exclusions), snakemake.output.raw,
        snakemake.output.exclusions, snakemake.output.outliers, snakemake.output.figure)
