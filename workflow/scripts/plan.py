from rnce.logs import to_file
from rnce.plan.report import make_plan

to_file(snakemake.log[0])
make_plan(snakemake.params.config, snakemake.params.regions, snakemake.output.table, snakemake.output.jobs,
          snakemake.output.text)
