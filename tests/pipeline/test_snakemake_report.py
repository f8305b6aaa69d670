"""Snakemake's own report: `snakemake --report` packs the marked figures with captions."""

from __future__ import annotations

import zipfile

from helpers.workflow import run, snakemake_cmd


def test_snakemake_report_has_the_marked_figures_with_captions(tiny_run, copy_of):
    workdir = copy_of(tiny_run)
    target = workdir / "report.zip"
    run(snakemake_cmd(workdir, "--report", str(target)))
    with zipfile.ZipFile(target) as archive:
        names = archive.namelist()
        pages = "".join(archive.read(n).decode("utf-8", "replace") for n in names
                        if n.endswith((".html", ".js")))
    figures = [n for n in names if n.endswith(".png")]
    # one spectrogram (or radio-map figure) per dataset at least
    assert any("spectrogram.png" in n for n in figures), names
    assert any("radio_maps.png" in n for n in figures), names
    assert "a spectrogram of an example" in pages      # the dataset caption, rendered
    assert "reproduces three papers" in pages          # the workflow description
