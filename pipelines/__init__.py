"""Build recipes, one per source; shipped in the wheel as `timelapse_d.recipes`."""
