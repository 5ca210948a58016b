//! The ClickHouse store (to be written).
