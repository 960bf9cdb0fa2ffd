"""The DOVE family (TGRS 2024): see docs/model.md for where each part follows the paper, the
SWAN/GaLR code family, or our own choice."""
