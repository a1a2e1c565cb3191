from rnce.logs import to_file
from rnce.ssl.embed import embed_regional

to_file(snakemake.log[0])
p, i = snakemake.params, snakemake.input
embed_regional(snakemake.wildcards.method, p.patch_root, p.cohorts, p.pretrain, dict(zip(p.boxes, i.encoders, strict=True)),
               snakemake.output[0], p.components, list(i.qc), snakemake.threads)
