from rnce.imaging.preprocess import registration_qc
from rnce.logs import to_file

to_file(snakemake.log[0])
registration_qc(list(snakemake.input), snakemake.output.table, snakemake.output.figure, snakemake.params.n_worst,
                snakemake.params.template, snakemake.params.resolution)
