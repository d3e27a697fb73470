"""Writing a SIF from an image.

native       the native backend: layers + scaffold -> mksquashfs -> SIF
apptainer    the apptainer backend: ``apptainer build`` through the runner
format       SIF v01 writer and reader (pure)
scaffold     the /.singularity.d files and SIF objects ``apptainer build`` adds
gocompat     Go/Apptainer string encoders, for byte-identical scaffold files
squash       run mksquashfs straight into the SIF at its offset
compression  the squashfs compressors and their levels (the one table)
elf          a tiny static program (the zstd probe's image runs it)
data/        the verbatim Apptainer 1.4.5 scripts (package data; see data/NOTICE)
"""
