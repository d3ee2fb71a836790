"""The ``neonpro`` command line (Typer + Rich)."""

from __future__ import annotations

from neonpro.entrypoints.cli.app import app


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]
