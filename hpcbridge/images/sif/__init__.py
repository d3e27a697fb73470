"""Writing a SIF: the format, the Apptainer scaffold, mksquashfs, native and apptainer backends."""
