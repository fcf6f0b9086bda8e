"""Building the model zoo: training and exporting the model pairs (needs the ``train`` extra)."""
