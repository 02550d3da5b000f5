"""The report of a run folder (``rmkit report``): plots and an HTML page."""
