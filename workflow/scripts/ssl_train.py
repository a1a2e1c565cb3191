from rnce.logs import to_file
from rnce.ssl.jobs import make_job
from rnce.ssl.train import launch

to_file(snakemake.log[0])
p, i, o = snakemake.params, snakemake.input, snakemake.output
job = make_job(snakemake.wildcards.method, p.stage, p.settings, p.patch_root, p.cohorts,
               {"model": o.model, "metrics": o.metrics, "checkpoints": p.checkpoints},
               threads=snakemake.threads, processes=snakemake.resources.gpu, box=snakemake.wildcards.get("box"),
               auxiliary=i.get("auxiliary"), auxiliary_boxes=i.get("auxiliary_boxes"),
               encoders=dict(zip(p.boxes, i.encoders, strict=True)) if p.boxes else None, visits=p.visits)
launch(job, snakemake.resources.gpu)
