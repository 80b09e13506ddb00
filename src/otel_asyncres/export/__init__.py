"""Exporting spans: provider set-up, the console view, export reports."""
