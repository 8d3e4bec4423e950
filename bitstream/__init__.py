"""The .vcx container: header, metadata, typed CRC-checked chunks, and its errors (no torch here)."""
