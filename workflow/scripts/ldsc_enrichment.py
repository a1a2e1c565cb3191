from rnce.genetics.ldsc import enrichment_job
from rnce.logs import to_file

to_file(snakemake.log[0])
p, i = snakemake.params, snakemake.input
enrichment_job(p.executables, p.workflow_dir, i.munged, p.reference, p.weights, list(i.cell_types), p.names,
               snakemake.output[0])
