"""The math on statistics: closed form, exact side, tails, solve, Monte Carlo, empirical Bayes."""
