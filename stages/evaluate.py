"""Stage ``evaluate@<loss>``: metrics/losses/<loss>.json, ROC/CMC curves, t-SNE and retrieval figures."""

from lossbench.config import load_params
from lossbench.evaluation import evaluate_loss
from lossbench.stage import loss_argument, run_stage


def main() -> str:
    return evaluate_loss(load_params(), loss_argument("evaluate"))


if __name__ == "__main__":
    run_stage("evaluate", main)
