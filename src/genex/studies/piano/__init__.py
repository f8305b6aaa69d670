"""The piano study. Piano transcription (MAPS/MAESTRO) with an invertible network, explained by its inverse.

Everything only this study uses is in this folder; `steps.py` holds its CLI steps."""

from genex.studies import Dataset, Study

STUDY = Study(
    name="piano",
    datasets=(
        Dataset("piano-sf", config=("datasets", "piano_sf"), title="Piano-SF (embedded piano pieces)", order=20,
                summarize="genex.studies.piano.summary:summarize",
                render="genex.studies.piano.render:render",
                description=('Polyphonic piano pieces rendered with several piano programs and soundfonts, which play '
                 "the role of MAPS's *instruments*, plus isolated notes per key (as MAPS's ISOL set) and, "
                 "per instrument, a set of random chords over all 88 keys and one of usual chords (as MAPS's "
                 'RAND and UCHO sets), so that every key sounds in training. The '
                 'MIDI ground truth is exact. Unlike MAPS, there are no real recordings (no Disklavier in '
                 'a room): the test instruments are held-out soundfonts instead.')),
        Dataset("maestro", config=("datasets", "maestro"), title="MAESTRO (real)", order=21,
                summarize="genex.studies.piano.summary:summarize",
                download="genex.studies.piano.download:download_maestro",
                description=('MAESTRO (Hawthorne et al. 2019): virtuosic piano performances on a Disklavier with '
                 'aligned MIDI, split by composition.')),
        Dataset("maps", config=("datasets", "maps"), title="MAPS (real)", order=22,
                summarize="genex.studies.piano.summary:summarize",
                description=('MAPS (Emiya et al. 2010): synthesised and Disklavier piano recordings with MIDI ground '
                 'truth, nine instruments; trained on synthesised pieces, tested on the Disklavier sets '
                 'ENSTDkCl and ENSTDkAm.')),
    ),
)
