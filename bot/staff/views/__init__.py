"""The staff app's views: each takes the request (and the signed-in viewer) and returns a page."""
