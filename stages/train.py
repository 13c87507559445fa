"""Stage ``train@<loss>-<seed>``: train one loss with one training seed into models/<loss>/seed<seed>/."""

from lossbench.config import load_params
from lossbench.stage import run_arguments, run_stage
from lossbench.training.run import train_run


def main() -> str:
    loss, seed = run_arguments("train")
    return train_run(load_params(), loss, seed)


if __name__ == "__main__":
    run_stage("train", main)
