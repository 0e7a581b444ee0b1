"""Model configs and cards (FGLA, AL, the ADE20K region groups): data files, installed with
the package."""
