from rnce.features.extract import write_shard
from rnce.logs import to_file

to_file(snakemake.log[0])
write_shard(snakemake.params.records, snakemake.params.backend, snakemake.output.features,
            snakemake.output.exclusions, snakemake.input.regions, snakemake.params.thickness_iterations,
            snakemake.params.incomplete, snakemake.params.ants_resolution)
