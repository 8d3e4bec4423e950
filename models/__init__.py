"""Neural network modules, their weights registry and the shipped weights (no file or video I/O)."""
