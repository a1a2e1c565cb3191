from rnce.imaging.inventory import combine
from rnce.logs import to_file

to_file(snakemake.log[0])
combine(list(snakemake.input), snakemake.output[0])
