"""Stage ``compare``: the comparison table and figures of every loss, and the headline loss's metrics."""

from lossbench.comparison.compare import compare
from lossbench.config.params import load_params
from lossbench.core.stage import run_stage


def main() -> str:
    return compare(load_params())


if __name__ == "__main__":
    run_stage("compare", main)
