from rnce.logs import to_file
from rnce.ssl.ceiling import raw_voxel_ceiling

to_file(snakemake.log[0])
p, i = snakemake.params, snakemake.input
raw_voxel_ceiling(p.patch_root, p.fit_cohorts, p.score_cohorts, p.boxes, i.auxiliary, i.auxiliary_boxes,
                  snakemake.output[0])
