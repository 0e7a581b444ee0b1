"""Semantic segmentation (HRNetV2-W48 + C1 for ADE20K) and the six FGLA region groups."""
