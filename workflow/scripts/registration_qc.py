from rnce.imaging.qc import registration_qc
from rnce.logs import to_file

to_file(snakemake.log[0])
registration_qc(list(snakemake.input), snakemake.output.table, snakemake.output.passed, snakemake.output.figure,
                snakemake.params.floor, snakemake.params.robust_z, snakemake.params.min_site_size,
                snakemake.params.n_montage, snakemake.params.template, snakemake.params.resolution)
