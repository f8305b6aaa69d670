"""genex: generative explanations of audio and radio-map networks."""

__version__ = "0.1.0"
