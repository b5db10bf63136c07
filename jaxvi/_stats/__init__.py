"""Data and its statistics: containers, simulation, data → shifted sufficient statistics."""
