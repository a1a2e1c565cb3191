from rnce.features.recon_all import run_recon_all
from rnce.logs import to_file

to_file(snakemake.log[0])
run_recon_all(snakemake.input[0], threads=snakemake.threads, **snakemake.params.subject)
