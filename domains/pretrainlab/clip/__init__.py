"""pretrainlab.clip: CLIP, its SSL-augmented baselines and the CLIP-rocket recipe (Fini et al. 2023,
"Improved baselines for vision-language pre-training", TMLR) on open_clip models.

Python API: :mod:`pretrainlab.clip.api` (``SPEC``, ``load``, ``pretrain``, ``finetune``, ``load_task``, ``evaluate``),
:class:`pretrainlab.clip.task.CLIPRocketTask`, readers in :mod:`pretrainlab.clip.formats`.
"""
