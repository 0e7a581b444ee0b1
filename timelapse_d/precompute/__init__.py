"""Precompute training fields (frames, flow, masks) as shards aligned with the clip shards."""
