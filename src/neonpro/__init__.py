"""neonpro: LGPD-compliant data management for Brazilian health and aesthetic clinics."""

__version__ = "0.1.0"
