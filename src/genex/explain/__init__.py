"""The studies' explanation steps (nsynth, radio, vocal, piano); the generic explainers,
infillers and component maps they use are the library, :mod:`genex.xai`."""
