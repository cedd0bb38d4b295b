"""pretrainlab.ct: selective reduction of CT data before contrastive pre-training (Wolf et al. 2024,
"Less is More"): DICOM / NIfTI / PNG readers, a phantom generator writing those formats, the
reduction strategies (vectorised, imagehash-exact Hash-k), SwAV pre-training (SimCLR / MoCo
selectable) and downstream fine-tuning with ROC AUC. CLI: ``pretrainlab ct --help``.
"""
