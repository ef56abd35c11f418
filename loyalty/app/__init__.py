"""The imperative shell: Litestar app, settings, error mapping, command line."""
