"""The bench and its parts (seed 003): anchors, clips, metrics, tasks, scoring, reports."""
