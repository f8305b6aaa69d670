# Study vocal: activation maximisation of a singing-voice detector through a DCGAN.
#   features → train_detector → evaluate_detector
#            → train_gan ──────→ activation_max → vocal_report (metrics.json + section)
# Each rule gets only its config subsection, so e.g. an `am` change reruns AM and the report.

VOCAL_DATASET, VOCAL_ROOT = study_dataset("vocal")


rule vocal_features:
    output:
        directory("results/vocal/features"),
    input:
        data=VOCAL_ROOT,
        code=genex_code("vocal features"),
    params:
        cfg=section("vocal", "features"),
        seed=config["seed"],
    resources:
        **job_resources("vocal_features"),
    conda:
        "../envs/genex.yaml"
    log:
        logs("vocal/features.log"),
    benchmark:
        benchmarks("vocal/features.tsv")
    shell:
        "genex vocal features --root {input.data:q} --params {params.cfg:q} --seed {params.seed} "
        "--out {output:q} > {log:q} 2>&1"


rule vocal_train_detector:
    output:
        directory("results/vocal/detector"),
    input:
        features=rules.vocal_features.output,
        code=genex_code("vocal train-detector"),
    params:
        cfg=section("vocal", "detector"),
        seed=config["seed"],
        device=config["device"],
    threads: job_threads("vocal_train_detector", gpu=True)
    resources:
        gpu=1,
        **job_resources("vocal_train_detector"),
    conda:
        "../envs/genex.yaml"
    log:
        logs("vocal/train_detector.log"),
    benchmark:
        benchmarks("vocal/train_detector.tsv")
    shell:
        "genex vocal train-detector --features {input.features:q} --params {params.cfg:q} "
        "--seed {params.seed} --threads {threads} --device {params.device} "
        "--checkpoints results/vocal/checkpoints/detector --out {output:q} > {log:q} 2>&1"


rule vocal_train_gan:
    output:
        directory("results/vocal/gan"),
    input:
        features=rules.vocal_features.output,
        code=genex_code("vocal train-gan"),
    params:
        cfg=section("vocal", "gan"),
        seed=config["seed"],
        device=config["device"],
    threads: job_threads("vocal_train_gan", gpu=True)
    resources:
        gpu=1,
        **job_resources("vocal_train_gan"),
    conda:
        "../envs/genex.yaml"
    log:
        logs("vocal/train_gan.log"),
    benchmark:
        benchmarks("vocal/train_gan.tsv")
    shell:
        "genex vocal train-gan --features {input.features:q} --params {params.cfg:q} "
        "--seed {params.seed} --threads {threads} --device {params.device} "
        "--checkpoints results/vocal/checkpoints/gan --out {output:q} > {log:q} 2>&1"


rule vocal_evaluate_detector:
    output:
        "results/vocal/evaluation/detector.json",
    input:
        features=rules.vocal_features.output,
        detector=rules.vocal_train_detector.output,
        code=genex_code("vocal evaluate-detector"),
    params:
        cfg=section("vocal", "evaluate"),
        seed=config["seed"],
        device=config["device"],
    threads: job_threads("vocal_evaluate_detector", gpu=True)
    resources:
        gpu=1,
        **job_resources("vocal_evaluate_detector"),
    conda:
        "../envs/genex.yaml"
    log:
        logs("vocal/evaluate_detector.log"),
    benchmark:
        benchmarks("vocal/evaluate_detector.tsv")
    shell:
        "genex vocal evaluate-detector --features {input.features:q} --detector {input.detector:q} "
        "--params {params.cfg:q} --seed {params.seed} --threads {threads} --device {params.device} "
        "--out {output:q} > {log:q} 2>&1"


rule vocal_activation_max:
    output:
        directory("results/vocal/am"),
    input:
        features=rules.vocal_features.output,
        detector=rules.vocal_train_detector.output,
        gan=rules.vocal_train_gan.output,
        code=genex_code("vocal activation-max"),
    params:
        cfg=section("vocal", "am"),
        seed=config["seed"],
        device=config["device"],
    threads: job_threads("vocal_activation_max", gpu=True)
    resources:
        gpu=1,
        **job_resources("vocal_activation_max"),
    conda:
        "../envs/genex.yaml"
    log:
        logs("vocal/activation_max.log"),
    benchmark:
        benchmarks("vocal/activation_max.tsv")
    shell:
        "genex vocal activation-max --features {input.features:q} --detector {input.detector:q} "
        "--gan {input.gan:q} --params {params.cfg:q} --seed {params.seed} --threads {threads} "
        "--device {params.device} --out {output:q} > {log:q} 2>&1"


rule vocal_report:
    output:
        metrics="results/vocal/metrics.json",
        detector_curve="results/vocal/detector_history.csv",
        gan_curve="results/vocal/gan_history.csv",
        section=report(directory("results/vocal/section"), patterns=["{name}.png"],
                       caption="../report/vocal.rst", category="vocal"),
    input:
        features=rules.vocal_features.output,
        evaluation=rules.vocal_evaluate_detector.output,
        detector=rules.vocal_train_detector.output,
        gan=rules.vocal_train_gan.output,
        am=rules.vocal_activation_max.output,
        code=genex_code("vocal report"),
    params:
        cfg=section("vocal", "report"),
        seed=config["seed"],
    resources:
        **job_resources("vocal_report"),
    conda:
        "../envs/genex.yaml"
    log:
        logs("vocal/report.log"),
    benchmark:
        benchmarks("vocal/report.tsv")
    shell:
        "genex vocal report --features {input.features:q} --evaluation {input.evaluation:q} "
        "--detector {input.detector:q} --gan {input.gan:q} --am {input.am:q} --params {params.cfg:q} "
        "--seed {params.seed} --metrics {output.metrics:q} --section {output.section:q} "
        "--curves {output.detector_curve:q} {output.gan_curve:q} > {log:q} 2>&1"
