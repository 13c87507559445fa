"""Stage ``evaluate@<loss>-<seed>``: one run's test embeddings, FAISS index, metrics, curves and bootstrap replicates.

Embedding and evaluation share one stage: a frozen run embeds its test set from the feature cache in a fraction
of a second, and every DVC stage costs seconds of bookkeeping (see README, *Reproducibility*).
"""

from lossbench.config import load_params
from lossbench.evaluation import evaluate_run
from lossbench.inference.embedding import embed_run
from lossbench.stage import run_arguments, run_stage


def main() -> str:
    loss, seed = run_arguments("evaluate")
    params = load_params()
    embedded = embed_run(params, loss, seed)
    return f"{embedded}; {evaluate_run(params, loss, seed)}"


if __name__ == "__main__":
    run_stage("evaluate", main)
