"""Device-side code: the int8 kernel library and its host/QEMU harnesses."""
