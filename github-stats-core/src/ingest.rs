//! The ingest loop (to be written).
