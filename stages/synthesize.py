"""Stage ``synthesize``: render the embedded synthetic face data set into data/synthetic/."""

from lossbench.config.params import load_params
from lossbench.core.stage import run_stage
from lossbench.data.synthetic import generate_dataset

OUTPUT = "data/synthetic"


def main() -> str:
    params = load_params()
    cfg = params.synthetic
    summary = generate_dataset(
        OUTPUT,
        identities=cfg.identities,
        images_per_id=cfg.images_per_id,
        image_size=cfg.image_size,
        domains=tuple(cfg.domains),
        seed=params.seed,
    )
    return f"{summary['identities']} identities, {summary['images']} images in {OUTPUT}"


if __name__ == "__main__":
    run_stage("synthesize", main)
