"""The reverse strike: screen call detail records for numbers that call like a fraud den.

Public API (heavy libraries - duckdb, pandas, scikit-learn, lightgbm - load inside the functions):
    import_calls, import_registry, import_fraud_list  carrier files -> canonical Parquet
    compute_features                                  DuckDB SQL features per number
    load_feature_table, rule_score, train_model, load_model, cross_validate   the two scorers
    score_table, build_leads, reverse_strike          ranked, explained leads and the reverse strike
"""

from .features import compute_features
from .ingest import ImportReport, Template, import_calls, import_fraud_list, import_registry, load_template
from .leads import build_leads, reverse_strike, score_table
from .scoring import FeatureTable, Model, cross_validate, load_feature_table, load_model, rule_score, train_model

__all__ = [
    "ImportReport", "Template", "import_calls", "import_registry", "import_fraud_list", "load_template",
    "compute_features", "FeatureTable", "Model", "load_feature_table", "rule_score", "train_model", "load_model",
    "cross_validate", "score_table", "build_leads", "reverse_strike",
]
