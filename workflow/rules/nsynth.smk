# Study nsynth: rate-distortion explanations of an instrument classifier with an inpainting GAN.
# features -> train_classifier -> train_inpainter -> explain_notes / explain_classes / evaluate
# -> nsynth_report (metrics.json + section). Each rule gets only the config subsection it uses.
# Two classifiers: "classifier" (the explained Φ) and "classifier_ablation" (Φ retrained with
# nsynth.ablation's settings, Table 1's ablation row): one training rule, one explain-classes
# rule, each with the two variants as a wildcard.


NSYNTH_DATA = study_dataset("nsynth")[1]


rule nsynth_features:
    output:
        directory("results/nsynth/features"),
    input:
        data=NSYNTH_DATA,
        code=genex_code("nsynth features"),
    params:
        cfg=section("nsynth", "features"),
    resources:
        **job_resources("nsynth_features"),
    conda:
        "../envs/genex.yaml"
    log:
        logs("nsynth/features.log"),
    benchmark:
        benchmarks("nsynth/features.tsv")
    shell:
        "genex nsynth features --root {input.data:q} --params {params.cfg:q} --out {output:q} > {log:q} 2>&1"


rule nsynth_train_classifier:
    output:
        directory("results/nsynth/{classifier}"),
    wildcard_constraints:
        classifier="classifier|classifier_ablation",
    input:
        features="results/nsynth/features",
        code=genex_code("nsynth train-classifier"),
    params:
        cfg=lambda wildcards: section_variant(
            ("nsynth", "classifier"), ("nsynth", "ablation"), wildcards.classifier == "classifier_ablation"),
        checkpoints="results/nsynth/checkpoints/{classifier}",
        seed=config["seed"],
        device=config["device"],
    threads: job_threads("nsynth_train_classifier", gpu=True)
    resources:
        gpu=1,
        **job_resources("nsynth_train_classifier"),
    conda:
        "../envs/genex.yaml"
    log:
        logs("nsynth/train_{classifier}.log"),
    benchmark:
        benchmarks("nsynth/train_{classifier}.tsv")
    shell:
        "genex nsynth train-classifier --features {input.features:q} --params {params.cfg:q} "
        "--seed {params.seed} --threads {threads} --device {params.device} "
        "--checkpoints {params.checkpoints:q} --out {output:q} > {log:q} 2>&1"


rule nsynth_train_inpainter:
    output:
        directory("results/nsynth/inpainter"),
    input:
        features="results/nsynth/features",
        classifier="results/nsynth/classifier",
        code=genex_code("nsynth train-inpainter"),
    params:
        cfg=section("nsynth", "inpainter"),
        seed=config["seed"],
        device=config["device"],
    threads: job_threads("nsynth_train_inpainter", gpu=True)
    resources:
        gpu=1,
        **job_resources("nsynth_train_inpainter"),
    conda:
        "../envs/genex.yaml"
    log:
        logs("nsynth/train_inpainter.log"),
    benchmark:
        benchmarks("nsynth/train_inpainter.tsv")
    shell:
        "genex nsynth train-inpainter --features {input.features:q} --classifier {input.classifier:q} "
        "--params {params.cfg:q} --seed {params.seed} --threads {threads} --device {params.device} "
        "--checkpoints results/nsynth/checkpoints/inpainter --out {output:q} > {log:q} 2>&1"


rule nsynth_explain_notes:
    output:
        directory("results/nsynth/notes"),
    input:
        features="results/nsynth/features",
        classifier="results/nsynth/classifier",
        inpainter="results/nsynth/inpainter",
        code=genex_code("nsynth explain-notes"),
    params:
        cfg=section("nsynth", "rde"),
        seed=config["seed"],
        device=config["device"],
    threads: job_threads("nsynth_explain_notes", gpu=True)
    resources:
        gpu=1,
        **job_resources("nsynth_explain_notes"),
    conda:
        "../envs/genex.yaml"
    log:
        logs("nsynth/explain_notes.log"),
    benchmark:
        benchmarks("nsynth/explain_notes.tsv")
    shell:
        "genex nsynth explain-notes --features {input.features:q} --classifier {input.classifier:q} "
        "--inpainter {input.inpainter:q} --params {params.cfg:q} --seed {params.seed} "
        "--threads {threads} --device {params.device} --out {output:q} > {log:q} 2>&1"


rule nsynth_explain_classes:
    output:
        directory("results/nsynth/{classes}"),
    wildcard_constraints:
        classes="classes|classes_ablation",
    input:
        features="results/nsynth/features",
        classifier=lambda wildcards: f"results/nsynth/{wildcards.classes.replace('classes', 'classifier')}",
        inpainter="results/nsynth/inpainter",
        code=genex_code("nsynth explain-classes"),
    params:
        cfg=section("nsynth", "rde"),
        seed=config["seed"],
        device=config["device"],
    threads: job_threads("nsynth_explain_classes", gpu=True)
    resources:
        gpu=1,
        **job_resources("nsynth_explain_classes"),
    conda:
        "../envs/genex.yaml"
    log:
        logs("nsynth/explain_{classes}.log"),
    benchmark:
        benchmarks("nsynth/explain_{classes}.tsv")
    shell:
        "genex nsynth explain-classes --features {input.features:q} --classifier {input.classifier:q} "
        "--inpainter {input.inpainter:q} --params {params.cfg:q} --seed {params.seed} "
        "--threads {threads} --device {params.device} --out {output:q} > {log:q} 2>&1"


rule nsynth_evaluate:
    output:
        directory("results/nsynth/evaluation"),
    input:
        features="results/nsynth/features",
        classifier="results/nsynth/classifier",
        inpainter="results/nsynth/inpainter",
        notes="results/nsynth/notes",
        code=genex_code("nsynth evaluate"),
    params:
        # the sanity check reruns RDE, so this rule also takes the rde subsection
        cfg=lambda wildcards: json.dumps({"evaluation": config["nsynth"]["evaluation"],
                                          "rde": config["nsynth"]["rde"]},
                                         sort_keys=True, separators=(",", ":")),
        seed=config["seed"],
        device=config["device"],
    threads: job_threads("nsynth_evaluate", gpu=True)
    resources:
        gpu=1,
        **job_resources("nsynth_evaluate"),
    conda:
        "../envs/genex.yaml"
    log:
        logs("nsynth/evaluate.log"),
    benchmark:
        benchmarks("nsynth/evaluate.tsv")
    shell:
        "genex nsynth evaluate --features {input.features:q} --classifier {input.classifier:q} "
        "--inpainter {input.inpainter:q} --notes {input.notes:q} --params {params.cfg:q} "
        "--seed {params.seed} --threads {threads} --device {params.device} --out {output:q} > {log:q} 2>&1"


rule nsynth_report:
    output:
        metrics="results/nsynth/metrics.json",
        curve="results/nsynth/deletion_curve.csv",
        section=report(directory("results/nsynth/section"), patterns=["{name}.png"],
                       caption="../report/nsynth.rst", category="nsynth"),
    input:
        features="results/nsynth/features",
        classifier="results/nsynth/classifier",
        inpainter="results/nsynth/inpainter",
        notes="results/nsynth/notes",
        classes="results/nsynth/classes",
        ablation_classifier="results/nsynth/classifier_ablation",
        ablation_classes="results/nsynth/classes_ablation",
        evaluation="results/nsynth/evaluation",
        code=genex_code("nsynth report"),
    params:
        cfg=section("nsynth", "report"),
        seed=config["seed"],
    resources:
        **job_resources("nsynth_report"),
    conda:
        "../envs/genex.yaml"
    log:
        logs("nsynth/report.log"),
    benchmark:
        benchmarks("nsynth/report.tsv")
    shell:
        "genex nsynth report --features {input.features:q} --classifier {input.classifier:q} "
        "--inpainter {input.inpainter:q} --notes {input.notes:q} --classes {input.classes:q} "
        "--ablation-classifier {input.ablation_classifier:q} --ablation-classes {input.ablation_classes:q} "
        "--evaluation {input.evaluation:q} --params {params.cfg:q} --seed {params.seed} "
        "--metrics {output.metrics:q} --curve {output.curve:q} --out {output.section:q} > {log:q} 2>&1"
