# Study radio: matching-pursuit explanations of a radio-map UNet (paper §3.2, Figs 3-4).
# features -> train Φ / Φ_gt (one rule each) -> evaluate, explain, sanity, sensitivity -> metrics -> section.
# Each rule gets only its config subsection, so an explanation parameter never retrains.


RADIO_DATA, RADIO_ROOT = study_dataset("radio")


rule radio_features:
    output:
        directory("results/radio/features"),
    input:
        data=RADIO_ROOT,
        code=genex_code("radio features"),
    params:
        cfg=section("radio", "features"),
        seed=config["seed"],
    resources:
        **job_resources("radio_features"),
    conda:
        "../envs/genex.yaml"
    log:
        logs("radio/features.log"),
    benchmark:
        benchmarks("radio/features.tsv")
    shell:
        "genex radio features --root {input.data:q} --params {params.cfg:q} --seed {params.seed} "
        "--out {output:q} > {log:q} 2>&1"


# Φ and Φ_gt (the UNets of the paper; `genex radio train --help`), one job each
RADIO_MODEL = "results/radio/models/{model}.pt"


rule radio_train:
    output:
        RADIO_MODEL,
    input:
        features=rules.radio_features.output[0],
        code=genex_code("radio train"),
    params:
        cfg=section("radio", "train"),
        seed=config["seed"],
        device=config["device"],
        checkpoints=lambda wildcards: f"results/radio/checkpoints/{wildcards.model}",
    wildcard_constraints:
        model="phi|phi_gt",
    threads: job_threads("radio_train", gpu=True)
    resources:
        gpu=1,
        **job_resources("radio_train"),
    conda:
        "../envs/genex.yaml"
    log:
        logs("radio/train_{model}.log"),
    benchmark:
        benchmarks("radio/train_{model}.tsv")
    shell:
        "genex radio train --model {wildcards.model:q} --features {input.features:q} --params {params.cfg:q} "
        "--seed {params.seed} --threads {threads} --device {params.device} "
        "--checkpoints {params.checkpoints:q} --out {output:q} > {log:q} 2>&1"


rule radio_evaluate:
    output:
        "results/radio/evaluation.json",
    input:
        features=rules.radio_features.output[0],
        phi=RADIO_MODEL.format(model="phi"),
        phi_gt=RADIO_MODEL.format(model="phi_gt"),
        code=genex_code("radio evaluate"),
    params:
        seed=config["seed"],
        device=config["device"],
    threads: job_threads("radio_evaluate")
    resources:
        gpu=1,
        **job_resources("radio_evaluate"),
    conda:
        "../envs/genex.yaml"
    log:
        logs("radio/evaluate.log"),
    benchmark:
        benchmarks("radio/evaluate.tsv")
    shell:
        "genex radio evaluate --features {input.features:q} --phi {input.phi:q} --phi-gt {input.phi_gt:q} "
        "--seed {params.seed} --threads {threads} --device {params.device} --out {output:q} > {log:q} 2>&1"


rule radio_explain:
    output:
        directory("results/radio/explain"),
    input:
        features=rules.radio_features.output[0],
        phi=RADIO_MODEL.format(model="phi"),
        phi_gt=RADIO_MODEL.format(model="phi_gt"),
        code=genex_code("radio explain"),
    params:
        cfg=section("radio", "explain"),
        seed=config["seed"],
        device=config["device"],
    threads: job_threads("radio_explain", gpu=True)
    resources:
        gpu=1,
        **job_resources("radio_explain"),
    conda:
        "../envs/genex.yaml"
    log:
        logs("radio/explain.log"),
    benchmark:
        benchmarks("radio/explain.tsv")
    shell:
        "genex radio explain --features {input.features:q} --phi {input.phi:q} --phi-gt {input.phi_gt:q} "
        "--params {params.cfg:q} --seed {params.seed} --threads {threads} --device {params.device} "
        "--out {output:q} > {log:q} 2>&1"


rule radio_sanity:
    output:
        "results/radio/sanity.json",
    input:
        features=rules.radio_features.output[0],
        phi=RADIO_MODEL.format(model="phi"),
        phi_gt=RADIO_MODEL.format(model="phi_gt"),
        code=genex_code("radio sanity"),
    params:
        cfg=section("radio", "explain"),
        seed=config["seed"],
        device=config["device"],
    threads: job_threads("radio_sanity")
    resources:
        gpu=1,
        **job_resources("radio_sanity"),
    conda:
        "../envs/genex.yaml"
    log:
        logs("radio/sanity.log"),
    benchmark:
        benchmarks("radio/sanity.tsv")
    shell:
        "genex radio sanity --features {input.features:q} --phi {input.phi:q} --phi-gt {input.phi_gt:q} "
        "--params {params.cfg:q} --seed {params.seed} --threads {threads} --device {params.device} "
        "--out {output:q} > {log:q} 2>&1"


RADIO_LOCALITY = "benchmarks/results/radio_locality.json"


# does each model's shadow of a building move as the simulator's does? (reruns the simulator)
rule radio_sensitivity:
    output:
        "results/radio/sensitivity.json",
    input:
        data=RADIO_ROOT,
        features=rules.radio_features.output[0],
        phi=RADIO_MODEL.format(model="phi"),
        phi_gt=RADIO_MODEL.format(model="phi_gt"),
        code=genex_code("radio sensitivity"),
    params:
        cfg=section("radio", "sensitivity"),
        simulator=config["radio"]["features"]["simulator"],
        seed=config["seed"],
        device=config["device"],
    threads: job_threads("radio_sensitivity")  # 1 unless configured: the simulator runs on one core
    resources:
        gpu=1,
        **job_resources("radio_sensitivity"),
    conda:
        "../envs/genex.yaml"
    log:
        logs("radio/sensitivity.log"),
    benchmark:
        benchmarks("radio/sensitivity.tsv")
    shell:
        "genex radio sensitivity --root {input.data:q} --simulator {params.simulator:q} "
        "--features {input.features:q} --phi {input.phi:q} --phi-gt {input.phi_gt:q} "
        "--params {params.cfg:q} --seed {params.seed} --threads {threads} --device {params.device} "
        "--out {output:q} > {log:q} 2>&1"


rule radio_metrics:
    output:
        metrics="results/radio/metrics.json",
        curves="results/radio/curves.csv",
    input:
        features=rules.radio_features.output[0],
        evaluation=rules.radio_evaluate.output[0],
        explain=rules.radio_explain.output[0],
        sanity=rules.radio_sanity.output[0],
        sensitivity=rules.radio_sensitivity.output[0],
        # the simulator's measured locality (benchmarks/bench_radio_locality.py), when committed
        locality=lambda wildcards: [RADIO_LOCALITY] if Path(RADIO_LOCALITY).exists() else [],
        phi=RADIO_MODEL.format(model="phi"),
        phi_gt=RADIO_MODEL.format(model="phi_gt"),
        code=genex_code("radio metrics"),
    params:
        # a list: ":q" quotes each item and an empty list leaves nothing
        locality=lambda wildcards, input: ["--locality", input.locality] if input.locality else [],
    resources:
        **job_resources("radio_metrics"),
    conda:
        "../envs/genex.yaml"
    log:
        logs("radio/metrics.log"),
    benchmark:
        benchmarks("radio/metrics.tsv")
    shell:
        "genex radio metrics --features {input.features:q} --evaluation {input.evaluation:q} "
        "--explain {input.explain:q} --sanity {input.sanity:q} --sensitivity {input.sensitivity:q} "
        "{params.locality:q} --phi {input.phi:q} --phi-gt {input.phi_gt:q} --curves {output.curves:q} --out {output.metrics:q} > {log:q} 2>&1"


rule radio_section:
    output:
        section=report(directory("results/radio/section"), patterns=["{name}.png"],
                       caption="../report/radio.rst", category="radio"),
    input:
        metrics=rules.radio_metrics.output.metrics,
        features=rules.radio_features.output[0],
        explain=rules.radio_explain.output[0],
        sanity=rules.radio_sanity.output[0],
        phi=RADIO_MODEL.format(model="phi"),
        phi_gt=RADIO_MODEL.format(model="phi_gt"),
        code=genex_code("radio section"),
    params:
        cfg=section("radio", "report"),
        seed=config["seed"],
        device=config["device"],
    resources:
        gpu=1,
        **job_resources("radio_section"),
    conda:
        "../envs/genex.yaml"
    log:
        logs("radio/section.log"),
    benchmark:
        benchmarks("radio/section.tsv")
    shell:
        "genex radio section --metrics {input.metrics:q} --features {input.features:q} "
        "--explain {input.explain:q} --sanity {input.sanity:q} --phi {input.phi:q} --phi-gt {input.phi_gt:q} "
        "--params {params.cfg:q} --seed {params.seed} --device {params.device} --out {output.section:q} > {log:q} 2>&1"
