"""What a run leaves behind, read back: plots, the HTML report and the console summary."""
