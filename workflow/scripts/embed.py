from rnce.logs import to_file
from rnce.ssl.embed import embed

to_file(snakemake.log[0])
p, i = snakemake.params, snakemake.input
embed(snakemake.wildcards.method, p.patch_root, p.cohorts, i.model,
      dict(zip(p.boxes, i.encoders, strict=True)) if i.get("encoders") else None, snakemake.output[0], list(i.qc),
      snakemake.threads)
