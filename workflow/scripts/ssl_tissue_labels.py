from rnce.logs import to_file
from rnce.ssl.augment import write_tissue_labels

to_file(snakemake.log[0])
write_tissue_labels(snakemake.input[0], snakemake.output[0], snakemake.params.template, snakemake.params.resolution)
