"""The reverse strike: screen call detail records for numbers that call like a fraud den.

Public API (heavy libraries are imported inside the functions that need them):
    import_calls, import_registry, import_fraud_list  - carrier files -> canonical Parquet
    compute_features                                   - DuckDB SQL features per number
    load_feature_table, rule_score, train_model, load_model, score_table - scorers
    build_leads                                        - ranked, explained leads and reverse strike
"""

from .ingest import ImportReport, Template, import_calls, import_fraud_list, import_registry, load_template

__all__ = ["ImportReport", "Template", "import_calls", "import_registry", "import_fraud_list", "load_template"]
