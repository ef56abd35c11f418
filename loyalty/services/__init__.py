"""Services: I/O around the pure domain, one database transaction per business operation."""
