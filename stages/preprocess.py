"""Stage ``preprocess``: data.original → leak-free splits in data/processed/ and metrics/data.json."""

from lossbench.config.params import load_params
from lossbench.core import paths
from lossbench.core.io import atomic_write_json
from lossbench.core.stage import run_stage
from lossbench.data.preprocess import preprocess_dataset


def main() -> str:
    params = load_params()
    d = params.data
    report = preprocess_dataset(
        d.original,
        paths.PROCESSED,
        image_size=d.image_size,
        val_ids=d.val_ids,
        test_ids=d.test_ids,
        queries_per_id=d.queries_per_id,
        query_domain=d.query_domain,
        query_domain_missing=d.query_domain_missing,
        min_images_per_id=d.min_images_per_id,
        max_image_pixels=d.max_image_pixels,
        seed=params.seed,
        folds=d.folds,
        fold=d.fold,
    )
    atomic_write_json(paths.DATA_REPORT, report)
    return report.get("summary") or f"wrote {paths.PROCESSED} and {paths.DATA_REPORT}"


if __name__ == "__main__":
    run_stage("preprocess", main)
