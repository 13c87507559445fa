"""Stage ``embed@<loss>-<seed>``: query/gallery embeddings of the test split (and the challenge test set)."""

from lossbench.config import load_params
from lossbench.inference.embedding import embed_run
from lossbench.stage import run_arguments, run_stage


def main() -> str:
    loss, seed = run_arguments("embed")
    return embed_run(load_params(), loss, seed)


if __name__ == "__main__":
    run_stage("embed", main)
