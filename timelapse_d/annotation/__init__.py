"""Crowdsourced curation without a server: the label taxonomy, vote resolution, agreement
statistics and the category-stratified train/test split. The Label Studio client wraps these.
"""
