"""Distribution families: log-densities, additive sufficient statistics, M-steps."""
