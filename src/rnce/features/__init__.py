"""Structural features: FreeSurfer stats (recon-all or an existing SUBJECTS_DIR) or the ANTs fallback."""
