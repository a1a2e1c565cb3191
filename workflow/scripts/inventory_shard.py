from rnce.imaging.inventory import inventory
from rnce.logs import to_file

to_file(snakemake.log[0])
inventory(snakemake.params.records, snakemake.output[0])
