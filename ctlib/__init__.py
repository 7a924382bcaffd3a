"""ctlib: Continuous-in-time ResShift reproduction kit."""
__version__ = "0.1.0"
