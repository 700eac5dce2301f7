// PostgreSQL source: being written.
