"""Sources: where source videos come from. Each turns a config into a list of SourceVideo."""

SOURCES = ("synthetic", "local", "flickr", "youtube", "urls")
REMOTE_SOURCES = SOURCES[2:]  # searched or listed, then downloaded (timelapse_d.sources.remote)
