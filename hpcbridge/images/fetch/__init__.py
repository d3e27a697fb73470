"""Getting an image: HTTP transport, registry auth and client, manifests, local image forms."""
