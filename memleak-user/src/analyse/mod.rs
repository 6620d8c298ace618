//! Analysis of recordings: pre-processing and leak models.
