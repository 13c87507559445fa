"""Stage ``evaluate@<loss>-<seed>``: the run's metrics on the test split (exact ranking, what its index returned,
verification), its curves and the identity-bootstrap replicates the comparison's intervals are built from. No torch.
"""

from lossbench.config.params import load_params
from lossbench.core.runtime import set_threads
from lossbench.core.stage import run_arguments, run_stage
from lossbench.evaluation.evaluate import evaluate_run


def main() -> str:
    loss, seed = run_arguments("evaluate")
    params = load_params()
    set_threads(params.threads)
    return evaluate_run(params, loss, seed)


if __name__ == "__main__":
    run_stage("evaluate", main)
