"""Figures: orthogonal views, metric plots, paper figures and the notebook slice browser."""
