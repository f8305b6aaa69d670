# genex: generative explanations of audio and radio-map networks.
# Thin on purpose: configuration, validation, and the rule files. See README.md.
from snakemake.utils import min_version

min_version("8.20")


configfile: os.path.join(workflow.basedir, "config", "config.yaml")


include: "workflow/rules/common.smk"


check_configfile_args(sys.argv)
validate_config(config, os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml"))


report: "workflow/report/workflow.rst"


include: "workflow/rules/data.smk"


# the studies of the registry (genex.studies), one rule file each: workflow/rules/<study>.smk,
# which writes results/<study>/metrics.json and results/<study>/section
for study in STUDY_NAMES:

    include: os.path.join("workflow", "rules", f"{study}.smk")


include: "workflow/rules/report.smk"


check_resource_rules()


rule all:
    default_target: True
    input:
        rules.report.output.report,
        rules.dataset_metrics.output,
        lambda wildcards: study_outputs("metrics"),
