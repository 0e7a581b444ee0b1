"""Annotation files (taxonomy, Label Studio config, guidelines); shipped in the wheel as `timelapse_d.annotation_files`."""
