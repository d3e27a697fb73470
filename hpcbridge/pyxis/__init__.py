"""pyxis compatibility: pyxis options and batch scripts run through Apptainer."""
