//! The GitHub Events API poller (to be written).
