"""Sensors that request runs of the pipeline (the alert sensor lives in alerts/)."""
