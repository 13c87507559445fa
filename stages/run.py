"""Stage ``run@<loss>-<seed>``: train one loss with one training seed, then embed, index and evaluate it.

Writes models/<loss>/seed<seed>/ (checkpoint), metrics/train/… (training curves and the kept epoch), the test
embeddings, the FAISS index, metrics/runs/… and the bootstrap replicates. One stage per (loss, seed) rather than
a train and an evaluate stage: with the frozen backbone both steps take seconds, while every DVC stage costs
seconds of start-up and bookkeeping (README, *Reproducibility*).

Under ``torchrun --nproc_per_node=N -m stages.run <loss> <seed>`` the training is data-parallel over N processes
(README, *Distributed training*); rank 0 then embeds, indexes and evaluates alone.
"""

from lossbench.config.params import load_params
from lossbench.core.stage import run_arguments, run_stage
from lossbench.embedding.extract import embed_run
from lossbench.evaluation.evaluate import evaluate_run
from lossbench.training import distributed
from lossbench.training.run import train_run


def main() -> str:
    loss, seed = run_arguments("run")
    params = load_params()
    with distributed.session() as rank:
        trained = train_run(params, loss, seed)
    if rank > 0:
        return f"{trained} (rank {rank}: rank 0 embeds and evaluates)"
    embedded = embed_run(params, loss, seed)
    return f"{trained}; {embedded}; {evaluate_run(params, loss, seed)}"


if __name__ == "__main__":
    run_stage("run", main)
