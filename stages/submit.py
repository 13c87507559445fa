"""Stage ``submit``: submission.json — every query's top-10 gallery files, ranked by the headline loss's model
(its first training seed).

With the challenge layout it covers ``<root>/test/query`` against ``<root>/test/gallery``; otherwise the test
split, scored with its labels. A challenge image preprocess could not read is named in a warning.
"""

import json
import warnings

from lossbench.apps.submission import lost_images, make_submission
from lossbench.config.params import load_params
from lossbench.core import paths
from lossbench.core.io import atomic_write_json
from lossbench.core.runtime import set_threads
from lossbench.core.stage import run_stage
from lossbench.data.store import check_digests, load_processed


def main() -> str:
    params = load_params()
    set_threads(params.threads)
    loss, seed = params.loss, params.seeds[0]
    _, manifest = load_processed(paths.PROCESSED)
    if paths.DATA_REPORT.is_file():
        report = json.loads(paths.DATA_REPORT.read_text(encoding="utf-8"))
        check_digests(paths.PROCESSED, report.get("digest", {}), str(paths.DATA_REPORT))  # the report is of this data
        lost = lost_images(report.get("skipped", {}))
        if lost:
            warnings.warn(
                f"{len(lost)} challenge test image(s) could not be read and are not in the submission: "
                f"{', '.join(lost[:5])} (see {paths.DATA_REPORT})",
                UserWarning,
                stacklevel=1,
            )
    submission = make_submission(manifest, paths.embeddings_dir(loss, seed))
    atomic_write_json(paths.SUBMISSION, submission.entries)
    return f"{loss} (seed {seed}) -> {paths.SUBMISSION}: {submission.summary()}"


if __name__ == "__main__":
    run_stage("submit", main)
