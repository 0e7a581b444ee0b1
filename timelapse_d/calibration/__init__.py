"""`tld calibrate`: filter thresholds learned from curators' labels (see :mod:`.fit`)."""
