import os

os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", str(snakemake.threads))

from rnce.imaging.preprocess import preprocess_shard  # noqa: E402
from rnce.logs import to_file  # noqa: E402

to_file(snakemake.log[0])
preprocess_shard(snakemake.params.records, snakemake.output[0], snakemake.input.regions, snakemake.params.transform,
                 snakemake.params.template, snakemake.params.resolution, snakemake.params.retry_below,
                 snakemake.params.registered_dir, snakemake.params.fast, snakemake.params.whole_size,
                 snakemake.input.inventory, snakemake.params.skull_stripped, snakemake.params.contrast)
