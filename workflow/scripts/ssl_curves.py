from rnce.logs import to_file
from rnce.plots import ssl_loss_curves

to_file(snakemake.log[0])
ssl_loss_curves(snakemake.input, snakemake.params.names, snakemake.output[0], snakemake.wildcards.method)
