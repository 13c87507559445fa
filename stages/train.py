"""Stage ``train@<loss>-<seed>``: train one loss, with its tuned values (``lossbench.tuning.apply``), with one
training seed (on the feature cache when frozen).

Writes models/<loss>/seed<seed>/ (the kept checkpoint) and metrics/train/<loss>/seed<seed>/ (training curves and
the kept epoch). Under ``torchrun --nproc_per_node=N -m stages.train <loss> <seed>`` the training is data-parallel
over N processes (docs/experiments.md, *Distributed training*); rank 0 writes.
"""

from lossbench.config.params import load_params
from lossbench.core.runtime import set_threads
from lossbench.core.stage import run_arguments, run_stage
from lossbench.models.weights import verify_weights
from lossbench.training import distributed
from lossbench.training.train import train_run
from lossbench.tuning.apply import tuned_spec


def main() -> str:
    loss, seed = run_arguments("train")
    params = load_params()
    set_threads(params.threads)
    verify_weights([params.resolve_loss(loss).model])
    with distributed.session() as rank:
        summary = train_run(params, tuned_spec(params, params.resolve_loss(loss)), seed)
    return summary if rank == 0 else f"{summary} (rank {rank}: rank 0 writes)"


if __name__ == "__main__":
    run_stage("train", main)
