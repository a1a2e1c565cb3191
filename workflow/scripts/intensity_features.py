from rnce.imaging.intensity import intensity_features
from rnce.logs import to_file

to_file(snakemake.log[0])
intensity_features(snakemake.params.patch_root, snakemake.params.cohorts, snakemake.output[0])
