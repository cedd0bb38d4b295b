"""pretrainlab.face: PETALface (Narayan et al., WACV 2025) — parameter-efficient transfer of a
high-resolution face-recognition backbone to low-resolution faces with image-quality-weighted
twin LoRA. See README.md in this folder."""
