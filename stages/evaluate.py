"""Stage ``evaluate@<loss>-<seed>``: one run's test metrics, curves and bootstrap replicates."""

from lossbench.config import load_params
from lossbench.evaluation import evaluate_run
from lossbench.stage import run_arguments, run_stage


def main() -> str:
    loss, seed = run_arguments("evaluate")
    return evaluate_run(load_params(), loss, seed)


if __name__ == "__main__":
    run_stage("evaluate", main)
