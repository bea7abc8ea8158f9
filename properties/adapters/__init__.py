"""Adapters that put real implementations behind :mod:`properties.contract`."""
