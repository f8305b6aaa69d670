# Study piano: an invertible network for piano transcription, run both ways (Kelz & Widmer 2019).
# features -> train_inn -> predict -> (train_smoother {gru,lstm,bigru}, train_cnn) -> evaluate
#          -> inspect (figures, concept test, audio) -> piano_report (metrics.json + section)
# Each rule gets only the config subsection it uses, so e.g. an explanation parameter reruns
# inspect and piano_report only. Checkpoints live in results/piano/checkpoints/<model>/
# (not an output: Snakemake would delete them before rerunning a killed job).


PIANO_DATA, PIANO_ROOT = study_dataset("piano")
PIANO_CKPT = "results/piano/checkpoints"


rule piano_features:
    output:
        directory("results/piano/features"),
    input:
        data=PIANO_ROOT,
        code=genex_code("piano features"),
    params:
        cfg=section("piano", "features"),
        seed=config["seed"],
    resources:
        **job_resources("piano_features"),
    conda:
        "../envs/genex.yaml"
    log:
        logs("piano/features.log"),
    benchmark:
        benchmarks("piano/features.tsv")
    shell:
        "genex piano features --root {input.data:q} --params {params.cfg:q} --seed {params.seed} "
        "--out {output:q} > {log:q} 2>&1"


rule piano_train_inn:
    output:
        "results/piano/models/inn.pt",
    input:
        features=rules.piano_features.output[0],
        code=genex_code("piano train-inn"),
    params:
        cfg=section("piano", "inn"),
        seed=config["seed"],
        device=config["device"],
        ckpt=f"{PIANO_CKPT}/inn",
    threads: job_threads("piano_train_inn", gpu=True)
    resources:
        gpu=1,
        **job_resources("piano_train_inn"),
    conda:
        "../envs/genex.yaml"
    log:
        logs("piano/train_inn.log"),
    benchmark:
        benchmarks("piano/train_inn.tsv")
    shell:
        "genex piano train-inn --features {input.features:q} --params {params.cfg:q} --seed {params.seed} "
        "--threads {threads} --device {params.device} --checkpoints {params.ckpt:q} --out {output:q} > {log:q} 2>&1"


rule piano_predict:
    output:
        directory("results/piano/predictions"),
    input:
        features=rules.piano_features.output[0],
        inn=rules.piano_train_inn.output[0],
        code=genex_code("piano predict"),
    params:
        seed=config["seed"],
        device=config["device"],
    threads: job_threads("piano_predict", gpu=True)
    resources:
        gpu=1,
        **job_resources("piano_predict"),
    conda:
        "../envs/genex.yaml"
    log:
        logs("piano/predict.log"),
    benchmark:
        benchmarks("piano/predict.tsv")
    shell:
        "genex piano predict --features {input.features:q} --inn {input.inn:q} --seed {params.seed} "
        "--threads {threads} --device {params.device} --out {output:q} > {log:q} 2>&1"


rule piano_train_smoother:
    output:
        "results/piano/models/{model}.pt",
    wildcard_constraints:
        model="gru|lstm|bigru",
    input:
        features=rules.piano_features.output[0],
        predictions=rules.piano_predict.output[0],
        code=genex_code("piano train-smoother"),
    params:
        cfg=lambda wildcards: section("piano", "smoothers", wildcards.model),
        seed=config["seed"],
        device=config["device"],
        ckpt=lambda wildcards: f"{PIANO_CKPT}/{wildcards.model}",
    threads: job_threads("piano_train_smoother", gpu=True)
    resources:
        gpu=1,
        **job_resources("piano_train_smoother"),
    conda:
        "../envs/genex.yaml"
    log:
        logs("piano/train_{model}.log"),
    benchmark:
        benchmarks("piano/train_{model}.tsv")
    shell:
        "genex piano train-smoother --model {wildcards.model:q} --features {input.features:q} "
        "--predictions {input.predictions:q} --params {params.cfg:q} --seed {params.seed} "
        "--threads {threads} --device {params.device} --checkpoints {params.ckpt:q} --out {output:q} > {log:q} 2>&1"


rule piano_train_cnn:
    output:
        "results/piano/models/cnn.pt",
    input:
        features=rules.piano_features.output[0],
        code=genex_code("piano train-cnn"),
    params:
        cfg=section("piano", "cnn"),
        seed=config["seed"],
        device=config["device"],
        ckpt=f"{PIANO_CKPT}/cnn",
    threads: job_threads("piano_train_cnn", gpu=True)
    resources:
        gpu=1,
        **job_resources("piano_train_cnn"),
    conda:
        "../envs/genex.yaml"
    log:
        logs("piano/train_cnn.log"),
    benchmark:
        benchmarks("piano/train_cnn.tsv")
    shell:
        "genex piano train-cnn --features {input.features:q} --params {params.cfg:q} --seed {params.seed} "
        "--threads {threads} --device {params.device} --checkpoints {params.ckpt:q} --out {output:q} > {log:q} 2>&1"


rule piano_evaluate:
    output:
        directory("results/piano/evaluation"),
    input:
        features=rules.piano_features.output[0],
        predictions=rules.piano_predict.output[0],
        models=expand("results/piano/models/{model}.pt", model=["gru", "lstm", "bigru", "cnn"]),
        code=genex_code("piano evaluate"),
    params:
        cfg=section("piano", "evaluation"),
        seed=config["seed"],
        device=config["device"],
    threads: job_threads("piano_evaluate", gpu=True)
    resources:
        gpu=1,
        **job_resources("piano_evaluate"),
    conda:
        "../envs/genex.yaml"
    log:
        logs("piano/evaluate.log"),
    benchmark:
        benchmarks("piano/evaluate.tsv")
    shell:
        "genex piano evaluate --features {input.features:q} --predictions {input.predictions:q} "
        "--models results/piano/models --params {params.cfg:q} --seed {params.seed} "
        "--threads {threads} --device {params.device} --out {output:q} > {log:q} 2>&1"


rule piano_inspect:
    output:
        directory("results/piano/inspection"),
    input:
        features=rules.piano_features.output[0],
        predictions=rules.piano_predict.output[0],
        inn=rules.piano_train_inn.output[0],
        code=genex_code("piano inspect"),
    params:
        cfg=section("piano", "explanation"),
        seed=config["seed"],
        device=config["device"],
    threads: job_threads("piano_inspect", gpu=True)
    resources:
        gpu=1,
        **job_resources("piano_inspect"),
    conda:
        "../envs/genex.yaml"
    log:
        logs("piano/inspect.log"),
    benchmark:
        benchmarks("piano/inspect.tsv")
    shell:
        "genex piano inspect --features {input.features:q} --predictions {input.predictions:q} "
        "--inn {input.inn:q} --params {params.cfg:q} --seed {params.seed} --threads {threads} "
        "--device {params.device} --out {output:q} > {log:q} 2>&1"


rule piano_report:
    output:
        metrics="results/piano/metrics.json",
        section=report(directory("results/piano/section"), patterns=["{name}.png"],
                       caption="../report/piano.rst", category="piano"),
    input:
        features=rules.piano_features.output[0],
        predictions=rules.piano_predict.output[0],
        evaluation=rules.piano_evaluate.output[0],
        inspection=rules.piano_inspect.output[0],
        code=genex_code("piano report"),
    params:
        cfg=section("piano", "report"),
        seed=config["seed"],
    resources:
        **job_resources("piano_report"),
    conda:
        "../envs/genex.yaml"
    log:
        logs("piano/report.log"),
    benchmark:
        benchmarks("piano/report.tsv")
    shell:
        "genex piano report --features {input.features:q} --predictions {input.predictions:q} "
        "--evaluation {input.evaluation:q} --inspection {input.inspection:q} --params {params.cfg:q} "
        "--seed {params.seed} --metrics {output.metrics:q} --section {output.section:q} > {log:q} 2>&1"
