"""Genetics: PLINK 2 QC and GWAS of the brain-age gaps, FUMA export, LDSC."""
