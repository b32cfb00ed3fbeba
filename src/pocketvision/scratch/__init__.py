"""NumPy-only fundamentals (being written). Never imports torch."""
