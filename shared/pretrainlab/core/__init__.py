"""pretrainlab.core: the shared pre-training core.

Modules: ``config`` (dataclass configs + YAML + overrides), ``train`` (the one training loop),
``distributed`` (torchrun / DDP helpers), ``checkpoint`` (safetensors, atomic, no pickle),
``losses`` (field-independent SSL losses), ``peft`` (LoRA / multi-LoRA), ``reduction`` (dataset
reduction), ``evaluate`` (probes, retrieval, metrics), ``data`` (datasets, manifests, caches,
synthetic-generator protocol), ``results`` (reproduction schema + report), ``bench``,
``cli`` and ``demo`` (helpers for Gradio apps; gradio is imported lazily).
"""

__version__ = "0.1.0"
