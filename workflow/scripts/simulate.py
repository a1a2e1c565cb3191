from rnce.logs import to_file
from rnce.simulate import simulate_world

to_file(snakemake.log[0])
simulate_world(snakemake.params.simulate, snakemake.params.out_dir, threads=snakemake.threads)
