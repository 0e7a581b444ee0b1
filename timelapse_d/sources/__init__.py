"""Sources: where source videos come from. Each turns a config into a list of SourceVideo."""
