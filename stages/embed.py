"""Stage ``embed@<loss>-<seed>``: the run's test (and challenge) embeddings, from its kept model.

A frozen-backbone run embeds from the feature cache (its head on cached features); any other run, or flip TTA,
runs its model on the images. Writes data/embeddings/<loss>/seed<seed>/.
"""

from lossbench.config.params import load_params
from lossbench.core.runtime import set_threads
from lossbench.core.stage import run_arguments, run_stage
from lossbench.embedding.extract import embed_run


def main() -> str:
    loss, seed = run_arguments("embed")
    params = load_params()
    set_threads(params.threads)
    return embed_run(params, loss, seed)


if __name__ == "__main__":
    run_stage("embed", main)
