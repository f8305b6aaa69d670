"""The nsynth study. Instrument classification on single notes (NSynth), explained by RDE with a GAN inpainter.

Everything only this study uses is in this folder; `steps.py` holds its CLI steps."""

from genex.studies import Dataset, Study

STUDY = Study(
    name="nsynth",
    datasets=(
        Dataset("nsynth-sf", config=("datasets", "nsynth_sf"), title="NSynth-SF (embedded single notes)", order=10,
                summarize="genex.studies.nsynth.summary:summarize",
                render="genex.studies.nsynth.render:render",
                description=('Single notes (4 s, note held 3 s) of the 11 NSynth instrument families, rendered on this '
                 'machine with FluidSynth from the General MIDI soundfonts Debian ships (FluidR3_GM, '
                 'TimGM6mb, MuseScore_General), several GM programs per family. As in NSynth, an '
                 '*instrument* is one program in one soundfont, and the valid and test instruments are '
                 'unseen in training. Unlike NSynth it has far fewer instruments (tens, not a thousand), '
                 "every note is a soundfont sample (NSynth's electronic and synthetic sources are stood in "
                 "for by GM's electric and synth programs), and there are no quality annotations.")),
        Dataset("nsynth", config=("datasets", "nsynth"), title="NSynth (real)", order=11,
                summarize="genex.studies.nsynth.summary:summarize",
                download="genex.studies.nsynth.download:download_nsynth",
                description=('NSynth (Engel et al. 2017): 305,979 four-second notes at 16 kHz from 1,006 instruments '
                 'in 11 families, split by instrument. CC BY 4.0.')),
    ),
)
