"""Retrieval (top-k / CMC, challenge score, mAP, MAP@R, R-precision) and verification metrics."""

from lossbench.metrics.ranking import challenge_score, evaluate_retrieval, rank_gallery
from lossbench.metrics.verification import evaluate_verification

__all__ = ["challenge_score", "evaluate_retrieval", "evaluate_verification", "rank_gallery"]
