"""The .vcx container: header, metadata, typed CRC-checked chunks, errors (no torch)."""
