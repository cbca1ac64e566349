"""deepcast.forecasting: the modelling core (model families, training, metrics, save/load).

Imports no orchestration or tracking framework.
"""
