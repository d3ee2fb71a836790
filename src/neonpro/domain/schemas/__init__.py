"""Schemas per operation: ``XCreate``, ``XUpdate``, ``XRead``, ``XPage`` for each aggregate."""
