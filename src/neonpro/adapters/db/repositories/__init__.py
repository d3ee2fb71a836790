"""SQLAlchemy implementations of the repository protocols (one module per aggregate)."""
