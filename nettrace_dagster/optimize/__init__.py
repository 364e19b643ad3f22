"""Parameter optimization: the parameter set, the search space, the portfolio objective, one Optuna
study per regime and the overfitting gate (docs/optimization.md)."""
