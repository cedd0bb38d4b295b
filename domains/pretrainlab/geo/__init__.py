"""pretrainlab.geo: PIGEON / PIGEOTTO image geolocation (Haas et al., CVPR 2024).

Semantic geocells, haversine label smoothing, multi-task contrastive pre-training with synthetic
captions, auxiliary heads and retrieval refinement, on a synthetic world built from real
geography (``pretrainlab geo data``) or a real CSV / webdataset by path.
"""
