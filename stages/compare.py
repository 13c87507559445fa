"""Stage ``compare``: the comparison table, the per-loss DVC metrics and the figures of every loss."""

from lossbench.comparison.compare import compare
from lossbench.config.params import load_params
from lossbench.core.runtime import set_threads
from lossbench.core.stage import run_stage


def main() -> str:
    params = load_params()
    set_threads(params.threads)
    return compare(params)


if __name__ == "__main__":
    run_stage("compare", main)
