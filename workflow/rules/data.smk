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
    resources:
        **job_resources("render_dataset"),
    conda:
        "../envs/genex.yaml"
    log:
        logs("render/{dataset}.log"),
    benchmark:
        benchmarks("render/{dataset}.tsv")
    shell:
        "genex render {wildcards.dataset:q} --params {params.cfg:q} --seed {params.seed} --out {output:q} > {log:q} 2>&1"


# Snakemake deletes a job's output before it runs the job again, so the download rule owns
# resources/<dataset> only while that folder does not exist: once there (downloaded, appearing
# only when complete, or copied in by hand) it is an input like a dataset's `path`, and no code
# edit, changed setting, --forcerun or --forceall deletes it (up to 101 GB). To download again,
# remove the folder yourself. No code inputs either: a download is checked by its checksums.
rule download_dataset:
    output:
        directory("resources/{dataset}"),
    params:
        cfg=lambda wildcards: dataset_section(wildcards.dataset),
    wildcard_constraints:
        dataset=not_downloaded_pattern(),
    resources:
        **job_resources("download_dataset"),
    conda:
        "../envs/genex.yaml"
    log:
        logs("download/{dataset}.log"),
    benchmark:
        benchmarks("download/{dataset}.tsv")
    shell:
        "genex download {wildcards.dataset:q} --params {params.cfg:q} --out {output:q} > {log:q} 2>&1"
