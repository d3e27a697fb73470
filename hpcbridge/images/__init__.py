"""Images: a Docker/OCI image reference in, a cached SIF out.

convert    the entry points: convert, convert_with_config, copy_out, ConvertResult
resolve    a reference to its manifest digest for the platform; cache hit or miss
publish    the cold path: build under the digest's lock, rename into the cache, record
cache      the on-disk cache: SIFs and records, blobs, tag resolutions, leftovers
space      the free-space check before a conversion (names the filesystem)
inventory  the cache as ``images list|inspect|prune`` see it
prune      which entries ``images prune`` removes (pure)
lock       a lock file that works across hosts (one conversion per digest)
refs       parse image references and platforms (pure)
readable   the runtime probe record: which compressions the runtime reads; ``auto``
progress   the progress hook: stages and per-layer byte counts
protocols  Layer and BinaryReader, the shapes fetch/ hands to layers/
fetch/     getting an image: HTTP, auth, registry, manifests, local image forms
layers/    decompress and apply layers to a tree, stream the tree as tar
sif/       write the SIF: format, scaffold, compressors, mksquashfs, the two backends
"""
