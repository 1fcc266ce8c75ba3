"""Training pipeline for login-scorer.

One module per step: ``rba`` (the data set's columns), ``generate``
(synthetic RBA-format data), ``features`` (preprocessing), ``model``
(autoencoders), ``evaluate`` (metrics and plots), ``export`` (the bundle).
"""
