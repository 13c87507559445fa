"""Stage ``embed@<loss>``: the test (and challenge) embeddings of every run of one loss (one per seed of ``seeds``),
from each run's kept model.

A frozen-backbone run embeds from the feature cache (its head on cached features); any other run, or flip TTA,
runs its model on the images. Writes data/embeddings/<loss>/seed<seed>/. One process per loss: a run's
embedding takes a fraction of a second, starting torch several.
"""

from lossbench.config.params import load_params
from lossbench.core.runtime import set_threads
from lossbench.core.stage import loss_argument, run_stage
from lossbench.embedding.extract import embed_run
from lossbench.models.weights import verify_weights


def main() -> str:
    loss = loss_argument("embed")
    params = load_params()
    set_threads(params.threads)
    verify_weights([params.resolve_loss(loss).model])
    return "; ".join(embed_run(params, loss, seed) for seed in params.seeds)


if __name__ == "__main__":
    run_stage("embed", main)
