"""The stages around the legacy base layer, one file per stage (seed in brackets): base_layer,
scale (004), roi (002), temporal (001), post (004), wiener, masks (000)."""
