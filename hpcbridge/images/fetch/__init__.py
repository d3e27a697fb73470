"""Getting an image: every source yields an :class:`.image.Image`.

transport  a small HTTP/1.1 client (retries, proxies) for the registry protocol
auth       registry credentials (docker config, helpers), challenges, bearer tokens
registry   Registry v2 client; load_registry (layers download in the background)
download   one blob into the blob cache: verified, resumable (HTTP Range)
head       the warm path's one HEAD over plain http, without http.client
manifest   manifests and indexes: parse, select a platform, canonical manifest (pure)
mediatypes their media types and the Accept header (pure)
image      Image and its layer blobs (LocalLayer, RemoteLayer, VerifyingReader)
local      OCI layout directories, oci-archive and docker-archive, read in place
"""
