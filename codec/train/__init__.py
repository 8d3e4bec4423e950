"""Training loops for the learned stages: data from real clips, one module per trained model."""
