"""The FGLA landscape animation model: training data stream, networks, losses."""
