"""Stage ``train@<loss>``: train one loss (``python -m stages.train <loss>``) into models/<loss>/."""

from lossbench.config import load_params
from lossbench.stage import loss_argument, run_stage
from lossbench.training.run import train_loss


def main() -> str:
    return train_loss(load_params(), loss_argument("train"))


if __name__ == "__main__":
    run_stage("train", main)
