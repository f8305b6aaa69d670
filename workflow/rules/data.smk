# Data: render the embedded datasets, download the real ones.  resources/<dataset>/


rule render_nsynth_sf:
    output:
        directory("resources/nsynth-sf"),
    input:
        genex_code("render nsynth-sf"),
    params:
        cfg=section("datasets", "nsynth_sf"),
        seed=config["seed"],
    conda:
        "../envs/genex.yaml"
    log:
        "logs/render/nsynth-sf.log",
    benchmark:
        "logs/benchmarks/render/nsynth-sf.tsv"
    shell:
        "genex render nsynth-sf --params {params.cfg:q} --seed {params.seed} --out {output:q} > {log:q} 2>&1"


rule render_piano_sf:
    output:
        directory("resources/piano-sf"),
    input:
        genex_code("render piano-sf"),
    params:
        cfg=section("datasets", "piano_sf"),
        seed=config["seed"],
    conda:
        "../envs/genex.yaml"
    log:
        "logs/render/piano-sf.log",
    benchmark:
        "logs/benchmarks/render/piano-sf.tsv"
    shell:
        "genex render piano-sf --params {params.cfg:q} --seed {params.seed} --out {output:q} > {log:q} 2>&1"


rule render_vocal_sf:
    output:
        directory("resources/vocal-sf"),
    input:
        genex_code("render vocal-sf"),
    params:
        cfg=section("datasets", "vocal_sf"),
        seed=config["seed"],
    conda:
        "../envs/genex.yaml"
    log:
        "logs/render/vocal-sf.log",
    benchmark:
        "logs/benchmarks/render/vocal-sf.tsv"
    shell:
        "genex render vocal-sf --params {params.cfg:q} --seed {params.seed} --out {output:q} > {log:q} 2>&1"


rule render_radio_sim:
    output:
        directory("resources/radio-sim"),
    input:
        genex_code("render radio-sim"),
    params:
        cfg=section("datasets", "radio_sim"),
        seed=config["seed"],
    conda:
        "../envs/genex.yaml"
    log:
        "logs/render/radio-sim.log",
    benchmark:
        "logs/benchmarks/render/radio-sim.tsv"
    shell:
        "genex render radio-sim --params {params.cfg:q} --seed {params.seed} --out {output:q} > {log:q} 2>&1"


# No code inputs on purpose: a download is checked against its checksums, and rerunning it
# would first delete resources/<dataset> (up to 101 GB), also a copy put there by hand.
# After a fix in the downloader: snakemake --forcerun download_dataset.
rule download_dataset:
    output:
        directory("resources/{dataset}"),
    params:
        cfg=lambda wildcards: section("datasets", DOWNLOADED[wildcards.dataset]),
    wildcard_constraints:
        dataset="|".join(DOWNLOADED),
    conda:
        "../envs/genex.yaml"
    log:
        "logs/download/{dataset}.log",
    benchmark:
        "logs/benchmarks/download/{dataset}.tsv"
    shell:
        "genex download {wildcards.dataset:q} --params {params.cfg:q} --out {output:q} > {log:q} 2>&1"
