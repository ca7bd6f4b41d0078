"""vimvq's Python side: the Vim model, its configs, the scan, export helpers."""
