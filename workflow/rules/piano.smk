# Study piano: an invertible network for piano transcription, run both ways.
