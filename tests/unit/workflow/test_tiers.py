"""The test tiers themselves: how parallel workers share the work (tests/conftest.py)."""

from conftest import work_unit


def test_a_module_is_one_work_unit_but_resume_and_reliability_cases_spread():
    share = "tests/pipeline/test_share.py"
    assert work_unit(f"{share}::test_second_repro_does_nothing") == work_unit(
        f"{share}::test_experiment_changes_params_and_metrics_diff_shows_them") == share
    resume = "tests/pipeline/test_resume.py::test_a_killed_training_rule_resumes_to_the_weights_of_an_uninterrupted_run"
    assert work_unit(f"{resume}[piano_train_inn]") != work_unit(f"{resume}[piano_train_cnn]")
    upstream = ("tests/pipeline/test_reliability_training_pipeline.py::"
                "test_an_upstream_change_retrains_the_model_from_scratch")
    by_study = {step: work_unit(f"{upstream}[{step}]") for step in
                ("piano_train_inn", "piano_train_smoother[gru]", "radio_train[phi]", "radio_train[phi_gt]",
                 "nsynth_train_classifier")}
    assert by_study["piano_train_inn"] == by_study["piano_train_smoother[gru]"]
    assert by_study["radio_train[phi]"] == by_study["radio_train[phi_gt]"]
    assert len(set(by_study.values())) == 3
