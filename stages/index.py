"""Stage ``index@<loss>``: the FAISS index (``index.*``) of every run of one loss over its test gallery, searched
with its test queries. Writes data/index/<loss>/seed<seed>/ (the index, for search, and the neighbours it
returned). No torch.
"""

from lossbench.config.params import load_params
from lossbench.core.runtime import set_threads
from lossbench.core.stage import loss_argument, run_stage
from lossbench.index.build import index_run


def main() -> str:
    loss = loss_argument("index")
    params = load_params()
    set_threads(params.threads)
    return "; ".join(index_run(params, loss, seed) for seed in params.seeds)


if __name__ == "__main__":
    run_stage("index", main)
