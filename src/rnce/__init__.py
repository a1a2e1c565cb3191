"""rnce: T1w MRI -> self-supervised imaging biomarkers (R-NCE) -> brain age -> GWAS -> LDSC."""

__version__ = "0.1.0"
