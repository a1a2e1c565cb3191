from rnce.harmonize import harmonize_features
from rnce.logs import to_file

to_file(snakemake.log[0])
harmonize_features(snakemake.input.raw, snakemake.input.regions, snakemake.params.covariates,
                   snakemake.params.min_images_per_site, snakemake.params.small_sites,
                   snakemake.params.learn_cohorts, snakemake.params.reference_cohorts,
                   snakemake.output.harmonized, snakemake.output.model, snakemake.output.summary,
                   snakemake.output.auxiliary, snakemake.output.boxes, snakemake.params.method)
