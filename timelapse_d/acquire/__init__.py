"""Acquisition: search remote catalogues and download source videos, rate-limited and resumable."""
