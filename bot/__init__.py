"""An Tâm's outer layer: configuration, command line, runtime, channels and the web server."""
