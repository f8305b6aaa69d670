"""The radio study. Radio-map estimation (RadioMapSeer), explained by RDE and matching pursuit over buildings.

Everything only this study uses is in this folder; `steps.py` holds its CLI steps."""

from genex.studies import Dataset, Study

STUDY = Study(
    name="radio",
    datasets=(
        Dataset("radio-sim", config=("datasets", "radio_sim"), title="Radio-Sim (embedded radio maps)", order=40,
                summarize="genex.studies.radio.summary:summarize",
                render="genex.studies.radio.render:render",
                description=('Procedurally generated cities and a simple propagation simulator (line of sight, path '
                 'loss, shadowing and diffraction around buildings) written in the RadioMapSeer layout: '
                 'city maps, one transmitter per image and the resulting gain map. Unlike RadioMapSeer, '
                 'whose gain maps come from a dominant-path model on real OpenStreetMap cities, both the '
                 'cities and the physics here are simplified.')),
        Dataset("radiomapseer", config=("datasets", "radiomapseer"), title="RadioMapSeer (real)", order=41,
                summarize="genex.studies.radio.summary:summarize",
                download="genex.studies.radio.download:download_radiomapseer",
                description=('RadioMapSeer (Levie et al. 2021): 700 city maps from OpenStreetMap with 80 transmitters '
                 'each, 256x256 gain maps from several simulators.')),
    ),
)
