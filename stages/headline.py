"""Stage ``headline``: metrics/metrics.json — the headline loss's row of the comparison (``dvc metrics diff``)."""

from lossbench.comparison.headline import write_headline
from lossbench.config.params import load_params
from lossbench.core.stage import run_stage


def main() -> str:
    return write_headline(load_params())


if __name__ == "__main__":
    run_stage("headline", main)
