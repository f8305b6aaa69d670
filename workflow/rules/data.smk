# Data: render the embedded datasets, download the real ones.  resources/<dataset>/


rule render_dataset:
    output:
        directory("resources/{dataset}"),
    input:
        genex_code("render {dataset}"),
    params:
        cfg=lambda wildcards: dataset_section(wildcards.dataset),
        seed=config["seed"],
    wildcard_constraints:
        dataset="|".join(EMBEDDED),
    conda:
        "../envs/genex.yaml"
    log:
        logs("render/{dataset}.log"),
    benchmark:
        benchmarks("render/{dataset}.tsv")
    shell:
        "genex render {wildcards.dataset:q} --params {params.cfg:q} --seed {params.seed} --out {output:q} > {log:q} 2>&1"


# No code inputs on purpose: a download is checked against its checksums, and rerunning it
# would first delete resources/<dataset> (up to 101 GB), also a copy put there by hand.
# After a fix in the downloader: snakemake --forcerun download_dataset.
rule download_dataset:
    output:
        directory("resources/{dataset}"),
    params:
        cfg=lambda wildcards: dataset_section(wildcards.dataset),
    wildcard_constraints:
        dataset="|".join(DOWNLOADED),
    conda:
        "../envs/genex.yaml"
    log:
        logs("download/{dataset}.log"),
    benchmark:
        benchmarks("download/{dataset}.tsv")
    shell:
        "genex download {wildcards.dataset:q} --params {params.cfg:q} --out {output:q} > {log:q} 2>&1"
