"""Stage ``evaluate@<loss>``: the metrics of every run of one loss on the test split (exact ranking, what its
index returned, verification), their curves and the identity-bootstrap replicates the comparison's intervals are
built from. Writes metrics/runs/<loss>/seed<seed>.json, metrics/curves/<loss>/ and data/evaluations/<loss>/.
No torch.
"""

from lossbench.config.params import load_params
from lossbench.core.runtime import set_threads
from lossbench.core.stage import loss_argument, run_stage
from lossbench.evaluation.evaluate import evaluate_run


def main() -> str:
    loss = loss_argument("evaluate")
    params = load_params()
    set_threads(params.threads)
    return "; ".join(evaluate_run(params, loss, seed) for seed in params.seeds)


if __name__ == "__main__":
    run_stage("evaluate", main)
