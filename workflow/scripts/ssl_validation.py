from rnce.logs import to_file
from rnce.ssl.validation import validation

to_file(snakemake.log[0])
p, i = snakemake.params, snakemake.input
validation(snakemake.wildcards.method, p.patch_root, p.cohorts, dict(zip(p.boxes, i.encoders, strict=True)),
           i.aggregator, i.auxiliary, i.auxiliary_boxes, p.encoder_settings, p.aggregator_settings,
           snakemake.output[0], snakemake.threads)
