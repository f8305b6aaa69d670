"""The vocal study. Singing-voice detection (Jamendo), explained by activation maximisation through a GAN.

Everything only this study uses is in this folder; `steps.py` holds its CLI steps."""

from genex.studies import Dataset, Study

STUDY = Study(
    name="vocal",
    datasets=(
        Dataset("vocal-sf", config=("datasets", "vocal_sf"), title="Vocal-SF (embedded songs)", order=30,
                summarize="genex.studies.vocal.summary:summarize",
                render="genex.studies.vocal.render:render",
                description=('Songs with and without a voice-like lead (GM choir and voice programs) over '
                 'accompaniment, rendered with FluidSynth, with frame-exact *sing*/*nosing* labels in '
                 "Jamendo's `.lab` format. Unlike Jamendo, the 'voice' is a sampled instrument, not a "
                 'singer with lyrics, so a detector trained on it learns a simpler concept.')),
        Dataset("jamendo", config=("datasets", "jamendo"), title="Jamendo (real)", order=31,
                summarize="genex.studies.vocal.summary:summarize",
                download="genex.studies.vocal.download:download_jamendo",
                description=('The Jamendo corpus (Ramona et al. 2008): 93 Creative-Commons songs with *sing*/*nosing* '
                 'annotations, split into jam_train, jam_valid and jam_test.')),
    ),
)
