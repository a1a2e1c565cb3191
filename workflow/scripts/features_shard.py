import os

os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", str(snakemake.threads))

from rnce.features.extract import write_shard  # noqa: E402
from rnce.logs import to_file  # noqa: E402

to_file(snakemake.log[0])
write_shard(snakemake.params.records, snakemake.params.backend, snakemake.output.features,
            snakemake.output.exclusions, snakemake.input.regions, snakemake.params.thickness_iterations,
            snakemake.params.incomplete, snakemake.params.ants_resolution)
