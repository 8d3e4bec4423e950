"""The thin codec: configuration, the plan of stages, side info, stream plumbing, the encoder
and decoder loops over the plan, and `info`."""
