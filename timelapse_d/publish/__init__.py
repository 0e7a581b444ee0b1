"""Publishing a build: the HTML report, the dataset card, loading with `datasets`, takedowns."""
