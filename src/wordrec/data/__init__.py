"""Data: charsets, LMDB datasets, preprocessing, augmentation, the synthetic generator, BYOD conversion, checks."""
