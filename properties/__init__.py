"""zsnr's property tests: of the float64 oracle (``properties.oracle``) and of real torch
implementations against it (``properties.conformance``), as a pytest plug-in (``properties.plugin``).
"""
