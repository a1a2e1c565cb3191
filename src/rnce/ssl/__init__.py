"""Self-supervised learning of imaging biomarkers (METHOD §4-6): losses, models,
augmentations, datasets over the patch store, training jobs and embeddings."""
