# Report: one section per dataset (and later per study), assembled into results/report/.


rule summarize_dataset:
    output:
        report(directory("results/datasets/{dataset}"), patterns=["{name}.png"],
               caption="../report/dataset.rst", category="Datasets"),
    input:
        data=lambda wildcards: dataset_root(wildcards.dataset),
        code=genex_code("summarize {dataset}"),
    params:
        cfg=section("report"),
        seed=config["seed"],
    resources:
        **job_resources("summarize_dataset"),
    conda:
        "../envs/genex.yaml"
    log:
        logs("summarize/{dataset}.log"),
    benchmark:
        benchmarks("summarize/{dataset}.tsv")
    shell:
        "genex summarize {wildcards.dataset:q} --root {input.data:q} --params {params.cfg:q} "
        "--seed {params.seed} --out {output:q} > {log:q} 2>&1"


rule report:
    output:
        report=directory("results/report"),
    input:
        sections=expand("results/datasets/{dataset}", dataset=active_datasets()),
        studies=lambda wildcards: study_outputs("section"),
        code=genex_code("report"),
    params:
        cfg=section("report"),
    resources:
        **job_resources("report"),
    conda:
        "../envs/genex.yaml"
    log:
        logs("report.log"),
    benchmark:
        benchmarks("report.tsv")
    shell:
        "genex report {input.sections:q} {input.studies:q} --params {params.cfg:q} --out {output.report:q} > {log:q} 2>&1"


rule dataset_metrics:
    output:
        "results/datasets/metrics.json",
    input:
        stats=expand("results/datasets/{dataset}", dataset=active_datasets()),
        code=genex_code("collect-metrics"),
    params:
        files=lambda wildcards, input: [f"{d}/stats.json" for d in input.stats],
    log:
        logs("dataset_metrics.log"),
    benchmark:
        benchmarks("dataset_metrics.tsv")
    resources:
        **job_resources("dataset_metrics"),
    conda:
        "../envs/genex.yaml"
    shell:
        "genex collect-metrics {params.files:q} --out {output:q} > {log:q} 2>&1"
