"""Stand-in servers on 127.0.0.1 that the real clients (flickrapi, yt-dlp) talk to in tests."""
