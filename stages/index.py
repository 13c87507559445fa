"""Stage ``index@<loss>-<seed>``: the run's FAISS index (``index.*``) over its test gallery, searched with its
test queries. Writes data/index/<loss>/seed<seed>/ (the index, for search, and the neighbours it returned). No torch.
"""

from lossbench.config.params import load_params
from lossbench.core.runtime import set_threads
from lossbench.core.stage import run_arguments, run_stage
from lossbench.index.build import index_run


def main() -> str:
    loss, seed = run_arguments("index")
    params = load_params()
    set_threads(params.threads)
    return index_run(params, loss, seed)


if __name__ == "__main__":
    run_stage("index", main)
