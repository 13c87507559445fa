"""Stage ``tune@<loss>``: tune one loss on the val split (lossbench/tuning) and write metrics/tuning/<loss>.csv
(every trial) and data/tuning/<loss>/best.json (the values its runs train with)."""

import optuna

from lossbench.config.params import load_params
from lossbench.core.runtime import set_threads
from lossbench.core.stage import loss_argument, run_stage
from lossbench.models.weights import verify_weights
from lossbench.tuning.records import best_file, trials_file, write_record
from lossbench.tuning.study import tune_loss


def main() -> str:
    name = loss_argument("tune")
    params = load_params()
    set_threads(params.threads)
    verify_weights([params.resolve_loss(name).model])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    record = tune_loss(params, name)
    write_record(record)
    best = record.best
    if not best["tuned"]:
        return f"{name}: not tuned ({best['reason']}); wrote {best_file(name)}"
    states = [row.state for row in record.trials]
    counts = ", ".join(f"{states.count(s)} {s}" for s in ("complete", "pruned", "fail") if s in states)
    return (
        f"{name}: {len(states)} trials ({counts}), best {best['monitor']} {best['objective']:.4f} at trial "
        f"{best['trial']}: {best['values']}; wrote {trials_file(name)} and {best_file(name)}"
    )


if __name__ == "__main__":
    run_stage("tune", main)
