"""Structural features: FreeSurfer stats (recon-all or an existing SUBJECTS_DIR) or the ANTs fallback."""

# the identifying and covariate columns in front of the features of every feature table
KEYS = ["participant_id", "session_id", "cohort", "site", "age", "sex", "diagnosis"]
