"""The HTML report: sections, figures and the dataset summaries, shared by every study."""
