from rnce.genetics.ldsc import cell_type_job
from rnce.logs import to_file

to_file(snakemake.log[0])
p = snakemake.params
cell_type_job(p.executables, p.workflow_dir, snakemake.input.bed, p.reference_dir, snakemake.output[0], p.window_kb)
