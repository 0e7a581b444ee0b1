"""Build recipes, one per source: data files, installed with the package."""
