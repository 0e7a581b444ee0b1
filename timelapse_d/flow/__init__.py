"""Optical flow backends (FlowNet 2.0 in plain PyTorch, OpenCV DIS, optional RAFT)."""
