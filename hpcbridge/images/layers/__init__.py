"""Image layers: from stored blobs to one flattened tree.

decompress  gzip/zstd/plain tar blob -> tar stream, on a background thread
decoded     every layer decompressed once, kept for the two passes of a streaming build
apply       apply layers in order: OCI whiteouts, confinement to the root
tree        where the tree lives: a directory (DiskFS) or memory (MemFS)
tar         stream a MemFS tree as one tar archive (for ``mksquashfs -tar``)
"""
