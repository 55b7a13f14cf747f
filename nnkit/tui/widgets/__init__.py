"""Widgets: tensor table, heatmap, gradient-check panel, equation panel."""
