"""Stage ``embed@<loss>``: query/gallery embeddings of the test split (and the challenge test set)."""

from lossbench import paths
from lossbench.config import load_params
from lossbench.data.store import load_processed
from lossbench.embedding import extract_embeddings
from lossbench.stage import loss_argument, run_stage
from lossbench.training.checkpoint import load_model
from lossbench.training.run import pick_device, set_threads


def main() -> str:
    loss = loss_argument("embed")
    params = load_params()
    set_threads(params.train.threads)
    device = pick_device()
    model, config = load_model(paths.model_dir(loss), device)
    images, manifest = load_processed(paths.PROCESSED)
    report = extract_embeddings(model, config, images, manifest, paths.embeddings_dir(loss),
                                params.evaluate.batch_size, params.evaluate.flip_tta, device)
    return f"{loss}: " + ", ".join(f"{name} {r['images']} images at {r['images_per_second']:.0f} img/s"
                                   for name, r in report.items())


if __name__ == "__main__":
    run_stage("embed", main)
