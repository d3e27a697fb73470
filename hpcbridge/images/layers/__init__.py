"""Image layers: decompress, apply (whiteouts, confinement), the flattened tree, tar streams."""
