"""pretrainlab.lidar: equivariant spatio-temporal self-supervision (E-SSL3D) for LiDAR 3D detection.

Hegde, Lohit, Peng, Jones, Patel, "Equivariant Spatio-Temporal Self-Supervision for LiDAR Object
Detection", ECCV 2024.
"""
