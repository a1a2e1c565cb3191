from rnce.genetics.fuma import export
from rnce.logs import to_file

to_file(snakemake.log[0])
export(snakemake.input[0], snakemake.output[0])
