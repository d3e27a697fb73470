"""Image layers: from stored blobs to one flattened tree.

decompress  gzip/zstd/plain tar blob -> tar stream, on a background thread
decoded     the first pass's headers read ahead on threads (bounded); the second pass reads again
apply       apply layers in order: OCI whiteouts, confinement to the root
tree        where the tree lives: a directory (DiskFS) or memory (MemFS)
tar         stream a MemFS tree as one tar archive (for ``mksquashfs -tar``)
"""
