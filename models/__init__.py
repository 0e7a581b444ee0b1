"""Model configs (FGLA, AL, the ADE20K region groups); shipped in the wheel as `timelapse_d.model_configs`."""
