"""The shards of a build: naming (:mod:`.naming`), tar writing and reading (:mod:`.tar`), clip
shards (:mod:`.clips`), field shards (:mod:`.fields`) and the joined reader (:mod:`.reader`)."""
