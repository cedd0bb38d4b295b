"""pretrainlab.isp: Learned Lightweight Smartphone ISP with Unpaired Data (Arhire & Timofte, CVPRW 2025).

RAW-to-RGB generators (EfficientISP, RobustISP, RMFA-Net tiny) trained paired, paired without
adversarial terms, or unpaired with texture and colour discriminators; RAW readers (Zurich,
MAI / Fujifilm UltraISP, NTIRE ``.npy``, DNG through rawpy); an unprocessing data generator.
"""
