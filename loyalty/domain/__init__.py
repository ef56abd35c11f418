"""The pure core: value types and rules with no I/O and no clock (time is a parameter).

Only the standard library may be imported here; ``import-linter`` enforces it.
"""
